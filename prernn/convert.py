"""Surgery: a backbone becomes a PreRNN network or a traditional recurrent baseline.

Both networks map a sequence of frames (B, T, *frame_shape) - images (C, H, W), or
clips (C, L, H, W) for C3D - to per-step outputs (B, T, num_outputs). The conv
stem runs once over all B*T frames.

Both *consume* the backbone: a PreRNN network's shared gates are the backbone's
own layers (same Parameters), and ``random`` input init re-initialises them in place.

Dropout (ours; the paper is silent): the pre-trained network's dropout follows fc6
and fc7, and every network keeps it there except where the head would read it: the
head always reads an undropped representation. A PreRNN (or per-frame) network's
last layer feeds its head undropped; a traditional network's fc7 feeds its RNN
through dropout, and the RNN feeds the head undropped; with random recurrent layers
on top (Table 2), fc7's dropout stays and the last of them feeds the head.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .backbones import Backbone
from .recurrent import CELLS, PreRecurrent, PreRNNConv, PreRNNLinear
from .registry import UnknownNameError, unknown_name_message


def resolve_layers(backbone: Backbone, layers: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validate transformed-layer names; keep the backbone's order. None -> all of them."""
    if layers is None:
        return backbone.layer_names
    if isinstance(layers, str):
        layers = (layers,)
    for name in layers:
        if name not in backbone.layers:
            raise UnknownNameError(unknown_name_message(f"{backbone.name} layer", name, list(backbone.layer_names)))
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be a non-empty list of distinct names from {list(backbone.layer_names)}, got {list(layers)}")
    return tuple(n for n in backbone.layer_names if n in layers)


class PreRNNNetwork(nn.Module):
    """Backbone with ``recurrent`` layers transformed, then ``extra`` random recurrent layers (optional), then the head."""

    def __init__(self, backbone: Backbone, recurrent: dict[str, PreRecurrent], extra: nn.RNNBase | None):
        super().__init__()
        self.backbone = backbone
        self.recurrent = nn.ModuleDict(recurrent)
        self.extra = extra

    def forward(self, x: Tensor) -> Tensor:
        B, T = x.shape[:2]
        h = self.backbone.stem(x.flatten(0, 1))  # (B*T, ...) one batched pass over all frames
        last = self.backbone.layer_names[-1]
        for name in self.backbone.layer_names:
            if name in self.recurrent:  # φ is inside the recurrence
                h = self.recurrent[name](h.unflatten(0, (B, T))).flatten(0, 1)
            else:
                h = self.backbone.act(self.backbone.layers[name](h))
            after = self.backbone.after[name]
            h = without_dropout(after, h) if name == last and self.extra is None else after(h)
        h = h.unflatten(0, (B, T))  # (B, T, feature_dim)
        if self.extra is not None:
            h, _ = self.extra(h)
        return self.backbone.head(h)  # (B, T, num_outputs)


def without_dropout(module: nn.Module, h: Tensor) -> Tensor:
    """``module(h)`` with its dropout left out (what follows a layer that feeds the head)."""
    if isinstance(module, nn.Dropout):
        return h
    if isinstance(module, nn.Sequential):
        for m in module:
            h = without_dropout(m, h)
        return h
    return module(h)


class TraditionalNetwork(nn.Module):
    """The feedforward backbone (fc6, fc7 keep their pre-trained weights), then
    ``num_layers`` randomly initialised torch RNN layers, then a new head."""

    def __init__(self, backbone: Backbone, rnn: nn.RNNBase):
        super().__init__()
        self.backbone = backbone
        self.rnn = rnn
        backbone.head = nn.Linear(rnn.hidden_size, backbone.num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        B, T = x.shape[:2]
        h = self.backbone.features(x.flatten(0, 1)).unflatten(0, (B, T))  # (B, T, feature_dim)
        h, _ = self.rnn(h)  # (B, T, hidden_dim)
        return self.backbone.head(h)


def torch_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int) -> nn.RNNBase:
    """A traditional recurrent stack (torch's fused RNN/LSTM/GRU; nn.RNN uses tanh, torch's default)."""
    if hidden_size < 1 or num_layers < 1:
        raise ValueError(f"hidden size and number of layers must be >= 1, got {hidden_size}, {num_layers}")
    return CELLS[cell].torch_rnn(input_size, hidden_size, num_layers=num_layers, batch_first=True)


def make_recurrent(backbone: Backbone, layers: Sequence[str] | str | None = None, cell: str = "lstm",
                   variant: str = "gate", input_init: str = "pretrained", recurrent_init: str = "zeros",
                   extra_layers: int = 0, activation: str | None = None, shared_gate: str | None = None,
                   recurrent_kernel_size: int = 3) -> PreRNNNetwork:
    """PreRNN: make ``layers`` of ``backbone`` recurrent (default: all its transformable
    layers, i.e. fc6/7 for VGG16 and C3D, layer4 for ResNet50), optionally add
    ``extra_layers`` random traditional recurrent layers of the same cell on top
    (Table 2's "fc6/7 + random"; their width is the backbone's feature size, ours)."""
    names = resolve_layers(backbone, layers)
    if extra_layers < 0:
        raise ValueError(f"extra_layers must be >= 0, got {extra_layers}")
    common = dict(cell=cell, variant=variant, input_init=input_init, recurrent_init=recurrent_init,
                  activation=activation or backbone.activation, shared_gate=shared_gate)
    recurrent = {}
    for name in names:
        layer = backbone.layers[name]
        if isinstance(layer, nn.Linear):
            recurrent[name] = PreRNNLinear(layer, **common)
        else:
            recurrent[name] = PreRNNConv(layer, kernel_size=recurrent_kernel_size, **common)
    extra = None
    if extra_layers:
        extra = torch_rnn(cell, backbone.feature_dim, backbone.feature_dim, extra_layers)
    return PreRNNNetwork(backbone, recurrent, extra)


def make_traditional(backbone: Backbone, cell: str = "lstm", hidden_dim: int = 512,
                     num_layers: int = 2) -> TraditionalNetwork:
    """The baseline: ``num_layers`` random recurrent layers of width ``hidden_dim`` on fc7's output."""
    CELLS[cell]  # unknown names fail with the list of cells
    return TraditionalNetwork(backbone, torch_rnn(cell, backbone.feature_dim, hidden_dim, num_layers))
