"""The vocabulary of the recurrence, one table per concept: cells, activations,
variants, input and recurrent initialisations. Everything else reads these tables;
adding a cell or an activation is one entry here plus its math (``steps.py``,
``loops.py`` and ``csrc/recurrence.cpp``, whose ``enum CellId`` / ``enum Act`` must
give it the same kernel id: ``kernels.check_source`` compares them before a build,
and the tests do).

Cells:
  vrnn   h_t = φ(W x_t + b + U h_{t-1})
  lstm   gates i, f, g, o; c_t = σ(a_f)⊙c_{t-1} + σ(a_i)⊙φ(a_g); h_t = σ(a_o)⊙φ(c_t)
  gru    gates r, z, n;  n = φ(a_n^x + r⊙(U_n h + c_n)); h_t = (1-z)⊙n + z⊙h_{t-1}

Variants: ``gate`` (gate-dependent input-to-hidden: the shared gate computes its input
term with the pre-trained layer itself, every other gate with a copy of it) and ``sih``
(single input-to-hidden: one pre-trained term feeds every gate; LSTM/GRU only). Both
are the paper's; which gate is shared by default (the candidate) is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..registry import Registry, UnknownNameError, unknown_name_message
from . import loops, steps

aten = torch.ops.aten

VARIANTS = ("gate", "sih")
INPUT_INITS = ("pretrained", "random")


@dataclass(frozen=True)
class Activation:
    """φ: its function, its derivative from its output (dL/da from dL/dφ and φ(a), as torch's
    own backward kernels take it), and its id in the C++ loop's ``enum Act``."""

    fn: Callable[[Tensor], Tensor]
    grad: Callable[[Tensor, Tensor], Tensor]
    kernel_id: int

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


ACTIVATIONS: Registry[Activation] = Registry("activation")
ACTIVATIONS.register("relu")(Activation(torch.relu, lambda g, y: aten.threshold_backward(g, y, 0), 0))
ACTIVATIONS.register("tanh")(Activation(torch.tanh, aten.tanh_backward, 1))
ACTIVATIONS.register("sigmoid")(Activation(torch.sigmoid, aten.sigmoid_backward, 2))
ACTIVATIONS.register("identity")(Activation(lambda a: a, lambda g, y: g, 3))


@dataclass(frozen=True)
class Cell:
    """One recurrence: its gates (in torch's order), the default shared gate, the number of
    state tensors, which gates carry a hidden bias per variant (the variants it has), its
    reference step, its fast loop's forward and backward, torch's traditional equivalent,
    and its id in the C++ loop's ``enum CellId``."""

    gates: tuple[str, ...]
    candidate: str
    states: int
    hidden_bias: dict[str, tuple[str, ...]]
    step: steps.Step
    forward: Callable
    backward: Callable
    torch_rnn: type[nn.RNNBase]
    kernel_id: int

    def check_variant(self, name: str, variant: str) -> None:
        if variant not in VARIANTS:
            raise UnknownNameError(unknown_name_message("variant", variant, list(VARIANTS)))
        if variant not in self.hidden_bias:
            allowed = [v for v in VARIANTS if v in self.hidden_bias]
            raise ValueError(
                f"variant {variant!r} is not defined for cell {name!r} (allowed: {', '.join(allowed)}); "
                "PreRNN-SIH exists for lstm and gru only"
            )


CELLS: Registry[Cell] = Registry("cell")
CELLS.register("vrnn")(Cell(("h",), "h", 1, {"gate": ()}, steps.vrnn_step, loops.vrnn_forward,
                            loops.vrnn_backward, nn.RNN, 0))
CELLS.register("lstm")(Cell(("i", "f", "g", "o"), "g", 2, {"gate": (), "sih": ("i", "f", "g", "o")},
                            steps.lstm_step, loops.lstm_forward, loops.lstm_backward, nn.LSTM, 1))
CELLS.register("gru")(Cell(("r", "z", "n"), "n", 1, {"gate": ("n",), "sih": ("r", "z", "n")},
                           steps.gru_step, loops.gru_forward, loops.gru_backward, nn.GRU, 2))


# --- recurrent weight initialisation, per gate block (H, H) or (C, C, k, k) ---

RECURRENT_INITS: Registry[Callable[[Tensor], object]] = Registry("recurrent init")
RECURRENT_INITS.register("zeros")(nn.init.zeros_)
RECURRENT_INITS.register("orthogonal")(nn.init.orthogonal_)
RECURRENT_INITS.register("xavier")(nn.init.xavier_uniform_)


@RECURRENT_INITS.register("identity")
def _identity_(block: Tensor) -> None:
    if block.dim() == 2:
        nn.init.eye_(block)
    else:  # a k x k conv that passes each channel through unchanged
        nn.init.dirac_(block)


def init_recurrent_(weight: Tensor, gates: int, how: str) -> None:
    init = RECURRENT_INITS[how]
    with torch.no_grad():
        for block in weight.chunk(gates, dim=0):
            init(block)


def cell_variants() -> list[tuple[str, str]]:
    """Every (cell, variant) a PreRNN layer can be, in table order."""
    return [(c, v) for c in CELLS for v in VARIANTS if v in CELLS[c].hidden_bias]
