"""One step of each cell's gate math, through autograd: the reference path.

``xg``, ``hg`` are a step's (B, G, *hidden) input and hidden terms, gates in the
cell's order (``tables.CELLS``); ``state`` is (h,) or, for the LSTM, (h, c). The conv
layers always run this path; linear layers run it when ``fast = False`` (the fast
loops in ``loops.py`` and ``csrc/`` are tested against it).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

State = tuple[Tensor, ...]
Step = Callable[[Tensor, Tensor, State, Callable[[Tensor], Tensor]], State]


def vrnn_step(xg: Tensor, hg: Tensor, state: State, act) -> State:
    return (act(xg[:, 0] + hg[:, 0]),)


def lstm_step(xg: Tensor, hg: Tensor, state: State, act) -> State:
    _, c = state
    i, f, g, o = (xg + hg).unbind(1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * act(g)
    return torch.sigmoid(o) * act(c), c


def gru_step(xg: Tensor, hg: Tensor, state: State, act) -> State:
    (h,) = state
    r = torch.sigmoid(xg[:, 0] + hg[:, 0])
    z = torch.sigmoid(xg[:, 1] + hg[:, 1])
    n = act(xg[:, 2] + r * hg[:, 2])
    return ((1 - z) * n + z * h,)
