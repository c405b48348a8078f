"""Convolutional PreRNN layers: ``h_t = φ(W * x_t + b + U * h_{t-1})``.

The input-to-hidden term is any pre-trained module mapping a frame's features to a
(C, h, w) pre-activation: an ``nn.Conv2d``, or a whole residual block without its
final ReLU (how ResNet50's last bottleneck becomes recurrent; see
``prernn.backbones.resnet``). U is a k x k convolution over the hidden map with
"same" padding, one C x C block per gate.

Ours, not the paper's: k defaults to 3 (ConvLSTM's usual choice; configurable);
gate copies of a conv input term are separate deep copies run one after another,
since a residual block cannot be stacked into one convolution. Everything else
(gates, variants, initialisation) is exactly as in ``layers.py``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import PreRecurrent, reset_
from .tables import init_recurrent_


def out_channels(layer: nn.Module) -> int:
    try:
        return int(layer.out_channels)
    except AttributeError:
        raise TypeError(
            f"a conv PreRNN layer needs an input module with `out_channels`; {type(layer).__name__} has none"
        ) from None


class PreRNNConv(PreRecurrent):
    """A pre-trained conv input term made recurrent over a C-channel hidden map."""

    def __init__(self, layer: nn.Module, cell: str = "lstm", variant: str = "gate",
                 input_init: str = "pretrained", recurrent_init: str = "zeros",
                 activation: str = "relu", shared_gate: str | None = None,
                 kernel_size: int = 3):
        super().__init__(layer, cell, variant, input_init, activation, shared_gate)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"recurrent kernel_size must be odd and >= 1 (same padding), got {kernel_size}")
        C, G = out_channels(layer), self.gates
        self.hidden_size, self.kernel_size = C, kernel_size
        self.copies = nn.ModuleList()
        if self.has_copies:
            for _ in range(G - 1):
                c = copy.deepcopy(layer)
                if input_init == "random":
                    reset_(c)
                self.copies.append(c)
        self.weight_hh = nn.Parameter(torch.empty(G * C, C, kernel_size, kernel_size))
        init_recurrent_(self.weight_hh, G, recurrent_init)
        n_bias = sum(self._hidden_bias_mask())
        self.hidden_bias = nn.Parameter(torch.zeros(n_bias * C)) if n_bias else None

    def _input_term(self, x: Tensor) -> Tensor:  # (N, ...) -> (N, G', C, h, w)
        shared = self.layer(x)
        copies = torch.stack([c(x) for c in self.copies], dim=1) if len(self.copies) else None
        return self._insert_shared(shared, copies)

    def _hidden_term(self, h: Tensor, bias: Tensor | None) -> Tensor:  # (B, C, h, w) -> (B, G, C, h, w)
        u = F.conv2d(h, self.weight_hh, bias, padding=self.kernel_size // 2)
        return u.unflatten(1, (self.gates, -1))

    def extra_repr(self) -> str:
        return (f"{self.cell_name}, variant={self.variant}, channels={self.hidden_size}, "
                f"kernel={self.kernel_size}, shared_gate={self.shared_gate}, activation={self.activation}")
