"""The fast time loop of linear PreRNN layers (prernn.recurrent.bptt: the C++ kernels and the
Python loop used without them) against the reference autograd loop: the same
outputs and the same gradients for every cell, variant and activation."""

import os
import warnings

import pytest
import torch
from torch import nn

from prernn.recurrent import ACTIVATIONS, CELLS, PreRNNLinear, cell_variants, kernels, loops

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


class _Ops(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every op the layer runs: (name, input dtypes and shapes, output numel)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        first = out[0] if isinstance(out, (tuple, list)) else out
        self.ops.append((func.overloadpacket.__name__, [(t.dtype, tuple(t.shape)) for t in tensors],
                         first.numel() if isinstance(first, torch.Tensor) else 0))
        return out


GATED = [(c, v) for c, v in COMBOS if v == "gate" and len(CELLS[c].gates) > 1]


@pytest.mark.parametrize("cell,variant", GATED)
def test_no_copy_of_the_gate_weights_is_made(cell, variant):
    """Forward and backward allocate nothing of the size of all gates' weights (fc6's: 16384 x
    25088 fp32, 1.6 GB) and join no weight-sized tensors at all: one GEMM per weight."""
    D, H = 40, 8
    layer = PreRNNLinear(nn.Linear(D, H), cell, variant)
    G = layer.gates
    x = torch.randn(2, 3, D, requires_grad=True)

    def big(seen):
        return [(name, n) for name, _, n in seen.ops if n >= G * H * D or (name == "cat" and n >= H * D)]

    with _Ops() as joined:  # what joining the weights would look like: the check sees it
        torch.cat([layer.layer.weight, layer.copy_weight])
    assert big(joined)
    with _Ops() as seen:
        layer(x).sum().backward()
    assert big(seen) == []


@pytest.mark.parametrize("precision", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cell,variant", [("lstm", "gate"), ("gru", "sih"), ("vrnn", "gate")])
def test_under_autocast_the_input_gemms_run_low_and_the_time_loop_in_fp32(monkeypatch, cell, variant, precision):
    """Every GEMM that reads the input (its D columns) runs in autocast's dtype; the hidden term,
    its backward and U's gradient in fp32; gradients come back in the parameters' and the
    input's dtypes, and the numbers stay within low precision of fp32's."""
    monkeypatch.setattr(kernels, "_module", None)  # the Python loop, whose ops the mode can see
    monkeypatch.setattr(kernels, "_tried", True)
    torch.manual_seed(4)
    D, H = 12, 8
    layer = PreRNNLinear(nn.Linear(D, H), cell, variant, recurrent_init="orthogonal")
    x = torch.randn(3, 5, D, requires_grad=True)
    y32 = layer(x)
    g32 = torch.autograd.grad(y32.sum(), [x, *layer.parameters()])
    with _Ops() as seen:
        with torch.autocast("cpu", dtype=precision):
            y = layer(x)
        grads = torch.autograd.grad(y.sum(), [x, *layer.parameters()])
    gemms = [(name, shapes) for name, shapes, _ in seen.ops if name in ("mm", "addmm")]
    reads_input = [s for s in gemms if any(D in shape for _, shape in s[1])]
    recurrent = [s for s in gemms if not any(D in shape for _, shape in s[1])]
    assert reads_input and recurrent
    assert all(dtype == precision for _, shapes in reads_input for dtype, _ in shapes)
    assert all(dtype == torch.float32 for _, shapes in recurrent for dtype, _ in shapes)
    assert y.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads)
    torch.testing.assert_close(y, y32, rtol=0.05, atol=0.05)
    for g, g_ref in zip(grads, g32, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=0.05, atol=0.05)


# ------------------------------------------------------------------ the compiled loop (CUDA's), on the CPU

@pytest.fixture
def python_loop_compiled_on_cpu(monkeypatch):
    """The Python loop (not the C++ one), run through torch.compile on CPU tensors as on CUDA's."""
    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_tried", True)
    monkeypatch.setattr(loops, "compile_on", {"cpu"})
    monkeypatch.setattr(loops, "_compiled", {})


@pytest.mark.parametrize("cell", ["vrnn", "lstm", "gru"])
def test_the_compiled_time_loop_gives_the_loops_numbers(python_loop_compiled_on_cpu, cell):
    torch.manual_seed(5)
    layer = PreRNNLinear(nn.Linear(6, 8), cell, "gate", recurrent_init="orthogonal", activation="tanh")
    x = torch.randn(3, 5, 6, requires_grad=True)
    state = tuple(torch.randn(3, 8, requires_grad=True) for _ in range(CELLS[cell].states))
    grad = torch.randn(3, 5, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a fallback would warn: it must not happen here
        fast = outputs_and_grads(layer, x, state, grad)
    ran = loops._compiled
    assert set(ran) == {CELLS[cell].forward, CELLS[cell].backward}  # both ran compiled ...
    assert all(c.failed is None for c in ran.values())  # ... and compiled
    layer.fast = False
    for a, b in zip(fast, outputs_and_grads(layer, x, state, grad), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_loop_that_cannot_compile_runs_as_written_with_one_warning(python_loop_compiled_on_cpu, monkeypatch):
    def no_backend(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no triton here")
        return run

    monkeypatch.setattr(torch, "compile", no_backend)
    torch.manual_seed(6)
    layer = PreRNNLinear(nn.Linear(4, 3), "lstm", recurrent_init="orthogonal")
    x = torch.randn(2, 4, 4, requires_grad=True)
    with pytest.warns(UserWarning, match=r"lstm_forward cannot be compiled here \(RuntimeError: no triton here\)"):
        y = layer(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert torch.equal(layer(x), y)  # once broken, the plain loop without another word
    layer.fast = False
    torch.testing.assert_close(y, layer(x))


def test_running_out_of_memory_is_not_taken_for_a_compile_failure(python_loop_compiled_on_cpu, monkeypatch):
    def out_of_memory(fn, **kwargs):
        def run(*args):
            raise torch.OutOfMemoryError("CUDA out of memory")
        return run

    monkeypatch.setattr(torch, "compile", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        PreRNNLinear(nn.Linear(4, 3), "gru")(torch.randn(2, 4, 4))
