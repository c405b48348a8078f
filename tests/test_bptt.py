"""The fast time loop of linear PreRNN layers (prernn.recurrent.bptt: the C++ kernels and the
Python loop used without them) against the reference autograd loop: the same
outputs and the same gradients for every cell, variant and activation."""

import os

import pytest
import torch
from torch import nn

from prernn.recurrent import ACTIVATIONS, CELLS, PreRNNLinear, cell_variants, kernels

COMBOS = cell_variants()


@pytest.fixture(params=["cpp", "python"])
def impl(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(kernels, "_module", None)
        monkeypatch.setattr(kernels, "_tried", True)
    elif kernels.load() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the C++ time loop must build in CI (g++ and ninja are installed by setup.sh)")
        pytest.skip("the C++ time loop cannot be built here")
    return request.param


def outputs_and_grads(layer, x, state, grad):
    y = layer(x, state)
    inputs = [x, *(s for s in state if s.requires_grad), *layer.parameters()]
    return [y, *torch.autograd.grad(y, inputs, grad)]


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("cell,variant", COMBOS)
def test_fast_loop_matches_reference(impl, cell, variant, activation):
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(5, 4), cell, variant, activation=activation, shared_gate=None).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(3, 6, 5, dtype=torch.double, requires_grad=True)
    state = tuple(torch.randn(3, 4, dtype=torch.double, requires_grad=True) for _ in range(CELLS[cell].states))
    grad = torch.randn(3, 6, 4, dtype=torch.double)
    fast = outputs_and_grads(layer, x, state, grad)
    layer.fast = False
    reference = outputs_and_grads(layer, x, state, grad)
    for a, b in zip(fast, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell,variant", COMBOS)
def test_float32_and_a_non_default_shared_gate(impl, cell, variant):
    torch.manual_seed(1)
    shared = CELLS[cell].gates[0]  # not the default (the candidate) unless VRNN
    layer = PreRNNLinear(nn.Linear(7, 8), cell, variant, recurrent_init="orthogonal", shared_gate=shared)
    x = torch.randn(4, 5, 7, requires_grad=True)
    state = tuple(torch.zeros(4, 8) for _ in range(CELLS[cell].states))
    grad = torch.randn(4, 5, 8)
    fast = outputs_and_grads(layer, x, state, grad)
    layer.fast = False
    for a, b in zip(fast, outputs_and_grads(layer, x, state, grad), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("hidden", [13, 160])
@pytest.mark.parametrize("cell,variant", COMBOS)
def test_float32_through_the_step_gemm_micro_kernel(impl, cell, variant, hidden):
    """Float32 takes the C++ loop's brgemm path. H=13 leaves edges outside the 8 x 8 tiles of
    the transposed copy of U; H=160 splits each step's GEMM into column blocks and the
    transposed copy into row blocks over torch's threads (when there are two or more)."""
    torch.manual_seed(2)
    layer = PreRNNLinear(nn.Linear(11, hidden), cell, variant, recurrent_init="orthogonal", activation="tanh")
    x = torch.randn(3, 5, 11, requires_grad=True)
    state = tuple(torch.randn(3, hidden) for _ in range(CELLS[cell].states))
    grad = torch.randn(3, 5, hidden)
    fast = outputs_and_grads(layer, x, state, grad)
    layer.fast = False
    for a, b in zip(fast, outputs_and_grads(layer, x, state, grad), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_kernel_that_does_not_build_falls_back_to_python_with_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr("torch.utils.cpp_extension.load", broken)
    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_tried", False)
    with pytest.warns(UserWarning, match="could not be built.*no compiler here.*Python loop"):
        assert kernels.load() is None
    layer = PreRNNLinear(nn.Linear(3, 2), "lstm")
    x = torch.randn(2, 4, 3, requires_grad=True)
    layer(x).sum().backward()  # the Python loop, no second warning
    assert x.grad is not None and kernels.load() is None


def test_the_output_may_be_modified_in_place():  # as nn.ReLU(inplace=True) after the layer would
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(3, 2), "gru", recurrent_init="orthogonal")
    x = torch.randn(2, 4, 3, requires_grad=True)
    layer(x).mul_(2).sum().backward()
    fast = x.grad
    layer.fast, x.grad = False, None
    layer(x).mul_(2).sum().backward()
    torch.testing.assert_close(fast, x.grad)


@pytest.mark.parametrize("capability,name,flag", [("AVX512", "prernn_recurrence_avx512", "-mavx512f"),
                                                  ("AVX2", "prernn_recurrence_avx2", "-mavx2"),
                                                  ("DEFAULT", "prernn_recurrence_default", None),
                                                  ("SVE256", "prernn_recurrence_default", None)])
def test_the_build_targets_the_cpus_capability_under_its_own_name(monkeypatch, capability, name, flag):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    built, flags = kernels._target()
    assert built == name
    assert (flag in flags) if flag else not any(f.startswith("-m") for f in flags)


def test_the_cpp_enums_are_the_tables_ids():
    """The C++ loop dispatches on ids: its enums must give each cell and activation tables.py's."""
    kernels.check_source()  # the real source agrees
    assert kernels.source_ids("CellId") == {name: CELLS[name].kernel_id for name in CELLS}
    assert kernels.source_ids("Act") == {name: ACTIVATIONS[name].kernel_id for name in ACTIVATIONS}
    swapped = kernels.SOURCE.read_text().replace("TANH = 1, SIGMOID = 2", "TANH = 2, SIGMOID = 1")
    with pytest.raises(ValueError, match=r"enum Act is .*'tanh': 2.*tables.py says"):
        kernels.check_source(swapped)
    missing = kernels.SOURCE.read_text().replace(", GRU = 2 }", " }")
    with pytest.raises(ValueError, match="enum CellId"):
        kernels.check_source(missing)
