"""Analytic parameter counts and the parameter matching of Table 1 ("Similar").

Counts are computed from the model definitions (layer shapes and the recurrence
equations), without building the recurrent networks, so the matcher can search
hidden sizes for paper-scale models in microseconds. A backbone can be given by
name: it is then built on the meta device (shapes only, no memory).
Tests check every formula against ``sum(p.numel())`` of the real modules.

Two counting conventions (``count``): ``weights+biases`` counts every parameter;
``weights`` counts weight matrices and conv kernels only (no biases, no batch-norm
scales). The paper does not say how it matched; under ``weights`` its "Similar"
sizes (VRNN 2740, LSTM 5761, GRU 5497 for VGG16 fc6/7) come out exactly, under
``weights+biases`` they are 2739, 5760, 5497.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from . import backbones
from .backbones import Backbone
from .recurrent import CELLS, out_channels
from .convert import resolve_layers


def _backbone(backbone: Backbone | str, num_outputs: int | None) -> Backbone:
    if isinstance(backbone, Backbone):
        return backbone
    return backbones.create(backbone, num_outputs=num_outputs, device="meta")


COUNTS = ("weights+biases", "weights")


def _check_count(count: str) -> bool:
    """True when biases (every 1-D parameter) are counted."""
    if count not in COUNTS:
        raise ValueError(f"unknown parameter count {count!r}; known: {', '.join(COUNTS)}")
    return count == "weights+biases"


def numel(module: nn.Module, count: str = "weights+biases") -> int:
    biases = _check_count(count)
    return sum(p.numel() for p in module.parameters() if biases or p.dim() >= 2)


def rnn_parameters(cell: str, input_size: int, hidden_size: int, num_layers: int,
                   count: str = "weights+biases") -> int:
    """torch's nn.RNN / nn.LSTM / nn.GRU: per layer W_ih, W_hh, b_ih, b_hh."""
    G, H = len(CELLS[cell].gates), hidden_size
    total = 0
    for layer in range(num_layers):
        d = input_size if layer == 0 else H
        total += G * H * (d + H) + 2 * G * H * _check_count(count)
    return total


def prernn_layer_parameters(layer: nn.Module, cell: str, variant: str, kernel_size: int = 3,
                            count: str = "weights+biases") -> int:
    """What making ``layer`` recurrent adds: gate copies, U_k blocks, hidden biases."""
    c = CELLS[cell]
    c.check_variant(cell, variant)
    G = len(c.gates)
    if isinstance(layer, nn.Linear):
        H, k2 = layer.out_features, 1
    else:
        H, k2 = out_channels(layer), kernel_size**2
    copies = (G - 1) * numel(layer, count) if variant == "gate" else 0
    return copies + G * H * H * k2 + H * len(c.hidden_bias[variant]) * _check_count(count)


def count_prernn(backbone: Backbone | str, cell: str = "lstm", variant: str = "gate",
                 layers: Sequence[str] | str | None = None, extra_layers: int = 0,
                 recurrent_kernel_size: int = 3, num_outputs: int | None = None,
                 count: str = "weights+biases") -> int:
    b = _backbone(backbone, num_outputs)
    total = numel(b, count)
    for name in resolve_layers(b, layers):
        total += prernn_layer_parameters(b.layers[name], cell, variant, recurrent_kernel_size, count)
    if extra_layers:
        total += rnn_parameters(cell, b.feature_dim, b.feature_dim, extra_layers, count)
    return total


def count_traditional(backbone: Backbone | str, cell: str = "lstm", hidden_dim: int = 512,
                      num_layers: int = 2, num_outputs: int | None = None, count: str = "weights+biases") -> int:
    b = _backbone(backbone, num_outputs)
    feedforward = numel(b, count) - numel(b.head, count)  # the head is replaced by one on the RNN's output
    head = hidden_dim * b.num_outputs + b.num_outputs * _check_count(count)
    return feedforward + rnn_parameters(cell, b.feature_dim, hidden_dim, num_layers, count) + head


def count_parameters(backbone: Backbone | str, model: str = "prernn", **config) -> int:
    """Total parameters of ``make_recurrent`` (model="prernn") or ``make_traditional``
    (model="traditional") networks with ``config``, counted analytically."""
    counters = {"prernn": count_prernn, "traditional": count_traditional}
    if model not in counters:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(counters)}")
    return counters[model](backbone, **config)


def match_hidden_dim(backbone: Backbone | str, cell: str = "lstm", layers: Sequence[str] | str | None = None,
                     num_layers: int = 2, variant: str = "gate", extra_layers: int = 0,
                     recurrent_kernel_size: int = 3, num_outputs: int | None = None,
                     count: str = "weights+biases") -> int:
    """The traditional hidden size whose whole network (heads included) has the
    parameter count closest to the PreRNN network's (same backbone and cell), both
    counted by ``count`` (see the module docstring)."""
    b = _backbone(backbone, num_outputs)
    target = count_prernn(b, cell, variant, layers, extra_layers, recurrent_kernel_size, count=count)
    trad = lambda h: count_traditional(b, cell, h, num_layers, count=count)  # noqa: E731  increasing in h
    if trad(1) >= target:
        return 1
    lo, hi = 1, 2
    while trad(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: trad(lo) < target <= trad(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if trad(mid) < target else (lo, mid)
    return lo if target - trad(lo) <= trad(hi) - target else hi
