"""The recurrence math of PreRNN layers against the equations written out by hand."""

import pytest
import torch
from torch import nn

from prernn.recurrent import CELLS, RECURRENT_INITS, PreRNNConv, PreRNNLinear, cell_variants
from prernn.registry import UnknownNameError

COMBOS = cell_variants()


def randomise_(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)


def reference(layer: PreRNNLinear, x: torch.Tensor) -> torch.Tensor:
    """The SPEC's equations, one gate at a time, from the layer's own parameters."""
    W, b, U = layer.layer.weight, layer.layer.bias, layer.weight_hh
    names, H = CELLS[layer.cell_name].gates, layer.hidden_size
    Uk = dict(zip(names, U.split(H)))
    if layer.variant == "gate" and len(names) > 1:
        others = [g for g in names if g != layer.shared_gate]
        Wk = dict(zip(others, layer.copy_weight.split(H)), **{layer.shared_gate: W})
        bk = dict(zip(others, layer.copy_bias.split(H)), **{layer.shared_gate: b})
    else:
        Wk, bk = {g: W for g in names}, {g: b for g in names}
    with_bias = CELLS[layer.cell_name].hidden_bias[layer.variant]
    ck = dict(zip(with_bias, layer.hidden_bias.split(H))) if with_bias else {}
    c0 = lambda g: ck.get(g, torch.zeros(H))  # noqa: E731
    phi, sig = torch.relu, torch.sigmoid
    h = c = torch.zeros(x.shape[0], H)
    out = []
    for t in range(x.shape[1]):
        a = {g: x[:, t] @ Wk[g].T + bk[g] for g in names}
        if layer.cell_name == "vrnn":
            h = phi(a["h"] + h @ Uk["h"].T)
        elif layer.cell_name == "lstm":
            a = {g: a[g] + h @ Uk[g].T + c0(g) for g in names}
            c = sig(a["f"]) * c + sig(a["i"]) * phi(a["g"])
            h = sig(a["o"]) * phi(c)
        else:
            r = sig(a["r"] + h @ Uk["r"].T + c0("r"))
            z = sig(a["z"] + h @ Uk["z"].T + c0("z"))
            n = phi(a["n"] + r * (h @ Uk["n"].T + c0("n")))
            h = (1 - z) * n + z * h
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("cell,variant", COMBOS)
def test_layer_matches_equations(cell, variant):
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(5, 4), cell, variant)
    randomise_(layer)
    x = torch.randn(3, 6, 5)
    torch.testing.assert_close(layer(x), reference(layer, x))


@pytest.mark.parametrize("cell,variant", COMBOS)
def test_shared_gate_is_the_pretrained_parameter(cell, variant):
    fc = nn.Linear(6, 4)
    layer = PreRNNLinear(fc, cell, variant)
    assert layer.layer.weight is fc.weight and layer.layer.bias is fc.bias
    if variant == "sih" or cell == "vrnn":
        assert layer.copy_weight is None and layer.copy_bias is None
        return
    G = len(CELLS[cell].gates)
    for w, b in zip(layer.copy_weight.chunk(G - 1), layer.copy_bias.chunk(G - 1)):
        assert torch.equal(w, fc.weight) and torch.equal(b, fc.bias)
    ptrs = {fc.weight.data_ptr(), fc.bias.data_ptr(), layer.copy_weight.data_ptr(), layer.copy_bias.data_ptr()}
    assert len(ptrs) == 4  # separate storage
    with torch.no_grad():
        layer.copy_weight.add_(1)
    assert not torch.equal(layer.copy_weight[:4], fc.weight)


@pytest.mark.parametrize("cell,variant", COMBOS)
def test_random_input_init_same_structure_new_values(cell, variant):
    torch.manual_seed(0)
    fc = nn.Linear(8, 6)
    before = fc.weight.detach().clone()
    pre = PreRNNLinear(nn.Linear(8, 6), cell, variant)
    rnd = PreRNNLinear(fc, cell, variant, input_init="random")
    assert [(n, p.shape) for n, p in pre.named_parameters()] == [(n, p.shape) for n, p in rnd.named_parameters()]
    assert rnd.layer.weight is fc.weight and not torch.equal(fc.weight, before)
    if rnd.copy_weight is not None:
        copies = rnd.copy_weight.chunk(len(CELLS[cell].gates) - 1)
        assert all(not torch.equal(c, fc.weight) for c in copies)
        assert all(c.abs().max() <= 1 / 8**0.5 for c in copies)  # nn.Linear's init bound


@pytest.mark.parametrize("how", RECURRENT_INITS.names())
@pytest.mark.parametrize("cell", ["vrnn", "lstm"])
def test_recurrent_init(how, cell):
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(3, 5), cell, recurrent_init=how)
    for U in layer.weight_hh.detach().chunk(len(CELLS[cell].gates)):
        if how == "zeros":
            assert not U.any()
        elif how == "identity":
            assert torch.equal(U, torch.eye(5))
        elif how == "orthogonal":
            torch.testing.assert_close(U @ U.T, torch.eye(5), atol=1e-5, rtol=0)
        else:
            assert U.abs().max() <= (6 / 10) ** 0.5 and U.std() > 0


def test_identity_conv_init_is_dirac():
    layer = PreRNNConv(nn.Conv2d(2, 3, 3, padding=1), "vrnn", recurrent_init="identity")
    h = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(layer._hidden_term(h, None)[:, 0], h)


@pytest.mark.parametrize("cell,variant", COMBOS)
def test_conv_layer(cell, variant):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, padding=1)
    layer = PreRNNConv(conv, cell, variant, kernel_size=3)
    randomise_(layer)
    x = torch.randn(2, 3, 2, 6, 6, requires_grad=True)
    y = layer(x)
    assert y.shape == (2, 3, 4, 6, 6) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and layer.weight_hh.grad.abs().sum() > 0
    assert layer.layer is conv and len(layer.copies) == (len(CELLS[cell].gates) - 1 if variant == "gate" else 0)


def test_conv_vrnn_with_zero_u_is_the_feedforward_conv():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    layer = PreRNNConv(conv, "vrnn")
    x = torch.randn(2, 5, 2, 6, 6)
    torch.testing.assert_close(layer(x), torch.relu(conv(x.flatten(0, 1))).unflatten(0, (2, 5)))


def test_bad_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown cell 'lstn'.*known: gru, lstm, vrnn.*did you mean 'lstm'"):
        PreRNNLinear(nn.Linear(2, 2), "lstn")
    with pytest.raises(ValueError, match="not defined for cell 'vrnn'.*allowed: gate"):
        PreRNNLinear(nn.Linear(2, 2), "vrnn", "sih")
    with pytest.raises(UnknownNameError, match="unknown recurrent init 'eye'.*identity"):
        PreRNNLinear(nn.Linear(2, 2), "gru", recurrent_init="eye")
    with pytest.raises(UnknownNameError, match="unknown lstm gate 'n'"):
        PreRNNLinear(nn.Linear(2, 2), "lstm", shared_gate="n")
    with pytest.raises(ValueError, match="odd"):
        PreRNNConv(nn.Conv2d(1, 2, 1), "vrnn", kernel_size=2)


def test_other_shared_gate_uses_the_pretrained_weight_there():
    torch.manual_seed(0)
    layer = PreRNNLinear(nn.Linear(5, 4), "lstm", shared_gate="o")
    randomise_(layer)
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(layer(x), reference(layer, x))
