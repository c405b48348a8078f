"""PreRNN and traditional networks over every registered backbone, cell, variant and input init."""

import pytest
import torch

import prernn
from prernn import backbones
from prernn.recurrent import CELLS

COMBOS = [(c, v) for c in CELLS for v in ("gate", "sih") if v in CELLS[c].hidden_bias]
MINI = [n for n in backbones.names() if n.startswith("mini_")]
FULL = [n for n in backbones.names() if not n.startswith("mini_")]
# full-size backbones on tiny frames where their pooling allows it (C3D's fc6 needs 16 x 112 x 112)
TINY_FRAMES = {"vgg16": (3, 32, 32), "resnet50": (3, 32, 32)}


def run(net, x):
    y = net(x)
    y.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    return y, grads


@pytest.mark.parametrize("input_init", prernn.INPUT_INITS)
@pytest.mark.parametrize("cell,variant", COMBOS)
@pytest.mark.parametrize("name", MINI)
def test_prernn_smoke_mini(name, cell, variant, input_init):
    torch.manual_seed(0)
    b = backbones.create(name, num_outputs=7)
    net = prernn.make_recurrent(b, cell=cell, variant=variant, input_init=input_init, recurrent_init="orthogonal")
    y, grads = run(net, b.example_input(2, 3))
    assert y.shape == (2, 3, 7) and torch.isfinite(y).all()
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
@pytest.mark.parametrize("cell,variant", COMBOS)
@pytest.mark.parametrize("name", FULL)
def test_prernn_smoke_full_size(name, cell, variant):
    torch.manual_seed(0)
    b = backbones.create(name, num_outputs=5)
    net = prernn.make_recurrent(b, cell=cell, variant=variant)
    x = torch.randn(1, 2, *TINY_FRAMES.get(name, b.frame_shape))
    y, grads = run(net, x)
    assert y.shape == (1, 2, 5) and torch.isfinite(y).all()
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("name", MINI)
def test_traditional_smoke(name, cell):
    b = backbones.create(name, num_outputs=4)
    net = prernn.make_traditional(b, cell=cell, hidden_dim=9, num_layers=2)
    y, grads = run(net, b.example_input(2, 3))
    assert y.shape == (2, 3, 4) and torch.isfinite(y).all() and all(g is not None for g in grads)
    assert net.rnn.hidden_size == 9 and net.backbone.head.in_features == 9


@pytest.mark.parametrize("name", MINI + ["vgg16", "resnet50"])
def test_zero_u_prervnn_is_the_feedforward_network_frame_by_frame(name):
    torch.manual_seed(0)
    b = backbones.create(name, num_outputs=6).eval()
    x = torch.randn(2, 4, *TINY_FRAMES.get(name, b.frame_shape))
    with torch.no_grad():
        expected = b(x.flatten(0, 1)).unflatten(0, (2, 4))
        got = prernn.make_recurrent(b, cell="vrnn", recurrent_init="zeros").eval()(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_zero_u_is_feedforward_for_one_layer_and_differs_with_u():
    torch.manual_seed(0)
    b = backbones.create("mini_vgg").eval()
    x = b.example_input(1, 3)
    with torch.no_grad():
        expected = b(x.flatten(0, 1)).unflatten(0, (1, 3))
        net = prernn.make_recurrent(b, layers="fc7", cell="vrnn").eval()
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
        net.recurrent["fc7"].weight_hh.normal_(0, 0.1)
        y = net(x)
    torch.testing.assert_close(y[:, 0], expected[:, 0])  # nothing to recur on at t = 0
    assert not torch.allclose(y[:, 1:], expected[:, 1:])


@pytest.mark.parametrize("cell,variant", COMBOS)
def test_network_shares_the_backbone_parameters(cell, variant):
    b = backbones.create("mini_vgg")
    fc6, fc7 = b.layers["fc6"], b.layers["fc7"]
    net = prernn.make_recurrent(b, cell=cell, variant=variant)
    for name, fc in (("fc6", fc6), ("fc7", fc7)):
        r = net.recurrent[name]
        assert r.layer.weight is fc.weight and r.layer.bias is fc.bias
        assert (r.copy_weight is None) == (variant == "sih" or cell == "vrnn")
    ids = [id(p) for p in net.parameters()]
    assert len(ids) == len(set(ids))  # shared, so counted once


@pytest.mark.parametrize("layers,transformed", [("fc6", ["fc6"]), (["fc7"], ["fc7"]), (["fc7", "fc6"], ["fc6", "fc7"])])
def test_layer_selection_and_extra_layers(layers, transformed):
    b = backbones.create("mini_c3d")
    net = prernn.make_recurrent(b, layers=layers, cell="gru", extra_layers=2)
    assert list(net.recurrent) == transformed
    assert isinstance(net.extra, torch.nn.GRU) and net.extra.num_layers == 2
    assert net(b.example_input(1, 2)).shape == (1, 2, b.num_outputs)


def test_bad_layer_names():
    with pytest.raises(KeyError, match=r"unknown mini_vgg layer 'fc8'; known: fc6, fc7"):
        prernn.make_recurrent(backbones.create("mini_vgg"), layers=["fc8"])
    with pytest.raises(ValueError, match="distinct"):
        prernn.make_recurrent(backbones.create("mini_vgg"), layers=["fc6", "fc6"])
    with pytest.raises(KeyError, match="unknown backbone 'vgg19'.*did you mean 'vgg16'"):
        backbones.create("vgg19")


def test_resnet_layer4_is_its_last_block_with_a_2048_channel_hidden_state():
    b = backbones.create("resnet50", device="meta")
    last_block = b.layers["layer4"].block
    net = prernn.make_recurrent(b, cell="lstm")
    r = net.recurrent["layer4"]
    assert isinstance(r, prernn.PreRNNConv) and r.layer.block is last_block
    assert r.hidden_size == 2048 and tuple(r.weight_hh.shape) == (4 * 2048, 2048, 3, 3)
