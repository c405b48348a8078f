"""PreRNN recurrence: a pre-trained feedforward layer ``y = φ(W x + b)`` becomes a
recurrent layer over ``x_1..x_T`` whose hidden size is the layer's own output size.

Cells (``tables.CELLS``):
  vrnn   h_t = φ(W x_t + b + U h_{t-1})
  lstm   gates i, f, g, o; c_t = σ(a_f)⊙c_{t-1} + σ(a_i)⊙φ(a_g); h_t = σ(a_o)⊙φ(c_t)
  gru    gates r, z, n;  n = φ(a_n^x + r⊙(U_n h + c_n)); h_t = (1-z)⊙n + z⊙h_{t-1}

Variants (``tables.VARIANTS``):
  gate   gate-dependent input-to-hidden: one gate (the shared gate) computes its
         input term with the pre-trained layer itself - the same Parameter objects,
         no copy; every other gate gets new Parameters initialised as copies of W, b.
  sih    single input-to-hidden (LSTM/GRU only): one pre-trained term s_t = W x_t + b
         feeds every gate, a_k = s_t + U_k h_{t-1} + c_k. No copies of W.

What is the paper's and what is ours:
  * paper: the equations above, the gate/SIH variants, shared vs copied memory,
    the pretrained/random input-to-hidden initialisation (Table 3).
  * ours (the paper does not publish them): the shared gate defaults to the
    candidate (LSTM ``g``, GRU ``n``); U defaults to zeros, so a PreVRNN starts out
    computing exactly the pre-trained network frame by frame; φ defaults to the
    pre-trained layer's activation (ReLU for fc layers) for every cell; hidden
    biases c_k (SIH, and the GRU candidate's c_n) start at zero; initial states are
    zero; ``random`` input init re-initialises W (in place, so the backbone sees it)
    and each copy independently, as fresh ``nn.Linear`` layers would be.

Efficiency: the input-to-hidden term for all T steps is one batched op over B*T
(one GEMM for the shared weight, one stacked GEMM for all gate copies); only the
hidden-to-hidden product runs step by step. A linear layer is one autograd node
(``bptt.py``): one input GEMM for the shared weight and one for all copies (never a
joined copy of the weights), the loop in C++ on the CPU, and U's gradient for all steps
in one GEMM. Under autocast the input
GEMMs run in its dtype and the time loop in fp32 (ours).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import UnknownNameError, unknown_name_message
from .bptt import LinearRecurrence
from .steps import State
from .tables import ACTIVATIONS, CELLS, INPUT_INITS, init_recurrent_


def reset_(module: nn.Module) -> None:
    """Re-initialise every sub-layer of ``module`` as if freshly constructed."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


class PreRecurrent(nn.Module):
    """The time loop shared by the linear and the conv PreRNN layers.

    Subclasses set ``self.weight_hh`` (G stacked U_k blocks) and implement
    ``_input_term`` ((N, ...) -> (N, G', *hidden), G' = G or 1 for SIH/VRNN) and
    ``_hidden_term`` ((B, *hidden) -> (B, G, *hidden))."""

    def __init__(self, layer: nn.Module, cell: str, variant: str, input_init: str,
                 activation: str, shared_gate: str | None):
        super().__init__()
        self.cell_name, self.variant = cell, variant
        self.cell = CELLS[cell]
        self.cell.check_variant(cell, variant)
        if input_init not in INPUT_INITS:
            raise UnknownNameError(unknown_name_message("input init", input_init, list(INPUT_INITS)))
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        shared_gate = shared_gate or self.cell.candidate
        if shared_gate not in self.cell.gates:
            raise UnknownNameError(unknown_name_message(f"{cell} gate", shared_gate, list(self.cell.gates)))
        self.shared_gate = shared_gate
        self.shared_index = self.cell.gates.index(shared_gate)
        self.layer = layer  # the pre-trained layer itself: the shared gate's Parameters
        if input_init == "random":
            reset_(layer)
        self.input_init = input_init

    @property
    def gates(self) -> int:
        return len(self.cell.gates)

    @property
    def has_copies(self) -> bool:
        return self.variant == "gate" and self.gates > 1

    def _hidden_bias_mask(self) -> list[bool]:
        with_bias = self.cell.hidden_bias[self.variant]
        return [g in with_bias for g in self.cell.gates]

    def _full_hidden_bias(self) -> Tensor | None:
        """The (G * hidden) bias vector of the hidden term; zeros where a gate has none."""
        if self.hidden_bias is None:
            return None
        mask = self._hidden_bias_mask()
        if all(mask):
            return self.hidden_bias
        parts = iter(self.hidden_bias.chunk(sum(mask)))
        zeros = self.hidden_bias.new_zeros(self.hidden_bias.numel() // sum(mask))
        return torch.cat([next(parts) if m else zeros for m in mask])

    def _insert_shared(self, shared: Tensor, copies: Tensor | None) -> Tensor:
        """(N, *h) shared term + (N, G-1, *h) copies -> (N, G, *h) gate inputs in gate order."""
        shared = shared.unsqueeze(1)
        if copies is None:  # SIH / VRNN: every gate reads the one shared term
            return shared.expand(-1, self.gates, *shared.shape[2:])
        i = self.shared_index
        return torch.cat([copies[:, :i], shared, copies[:, i:]], dim=1)

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        """x: (B, T, *in) -> hidden states (B, T, *hidden)."""
        B, T = x.shape[:2]
        # time-major (T, B, G, *hidden): each step's input terms are one contiguous block
        xs = self._input_term(x.transpose(0, 1).flatten(0, 1)).unflatten(0, (T, B))
        if state is None:
            zeros = xs.new_zeros(B, *xs.shape[3:])
            state = (zeros,) * self.cell.states
        return self._recur(xs, state, self._full_hidden_bias())

    def _recur(self, xs: Tensor, state: State, bias: Tensor | None) -> Tensor:
        """The reference time loop: (T, B, G, *hidden) input terms -> (B, T, *hidden)."""
        outputs = []
        for xt in xs:
            hg = self._hidden_term(state[0], bias)  # (B, G, *hidden)
            state = self.cell.step(xt, hg, state, self.act)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1)


class PreRNNLinear(PreRecurrent):
    """A pre-trained ``nn.Linear`` (W: H x D) made recurrent with hidden size H.

    It runs as one autograd node with hand-written BPTT (``bptt.py``; how it
    compares with torch's fused RNNs is in BENCHMARKS.md); ``fast = False`` on an
    instance selects the reference path (input terms, then the loop in autograd)."""

    fast = True

    def __init__(self, layer: nn.Linear, cell: str = "lstm", variant: str = "gate",
                 input_init: str = "pretrained", recurrent_init: str = "zeros",
                 activation: str = "relu", shared_gate: str | None = None):
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"PreRNNLinear transforms an nn.Linear, got {type(layer).__name__}")
        super().__init__(layer, cell, variant, input_init, activation, shared_gate)
        H, D, G = layer.out_features, layer.in_features, self.gates
        self.hidden_size = H
        if self.has_copies:
            # all gate copies as one stacked (G-1)H x D weight: one GEMM for all of them
            self.copy_weight = nn.Parameter(layer.weight.detach().repeat(G - 1, 1))
            self.copy_bias = nn.Parameter(layer.bias.detach().repeat(G - 1))
            if input_init == "random":
                with torch.no_grad():  # each copy on its own, like a fresh nn.Linear
                    for w, b in zip(self.copy_weight.chunk(G - 1), self.copy_bias.chunk(G - 1)):
                        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                        nn.init.uniform_(b, -1 / math.sqrt(D), 1 / math.sqrt(D))
        else:
            self.register_parameter("copy_weight", None)
            self.register_parameter("copy_bias", None)
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        init_recurrent_(self.weight_hh, G, recurrent_init)
        n_bias = sum(self._hidden_bias_mask())
        self.hidden_bias = nn.Parameter(torch.zeros(n_bias * H)) if n_bias else None

    def _input_term(self, x: Tensor) -> Tensor:  # (N, D) -> (N, G', H)
        shared = F.linear(x, self.layer.weight, self.layer.bias)
        copies = None
        if self.copy_weight is not None:
            copies = F.linear(x, self.copy_weight, self.copy_bias).unflatten(1, (self.gates - 1, -1))
        return self._insert_shared(shared, copies)

    def _hidden_term(self, h: Tensor, bias: Tensor | None) -> Tensor:  # (B, H) -> (B, G, H)
        return F.linear(h, self.weight_hh, bias).unflatten(1, (self.gates, -1))

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        if not self.fast:
            return super().forward(x, state)
        kind = x.device.type
        gemm_dtype = None  # under autocast: the input GEMMs in its dtype, the time loop in fp32 (ours)
        if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind):
            gemm_dtype = torch.get_autocast_dtype(kind)
        loop = self.weight_hh.dtype
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size, dtype=loop)
            state = (zeros,) * self.cell.states
        h0, c0 = (*(s.to(loop) for s in state), None)[:2]  # c0: LSTM only
        with torch.autocast(kind, enabled=False) if gemm_dtype is not None else contextlib.nullcontext():
            return LinearRecurrence.apply(x, self.layer.weight, self.layer.bias, self.copy_weight, self.copy_bias,
                                          self.weight_hh, self._full_hidden_bias(), h0, c0,
                                          self.cell_name, self.activation, self.shared_index, gemm_dtype)

    def extra_repr(self) -> str:
        return (f"{self.cell_name}, variant={self.variant}, hidden={self.hidden_size}, "
                f"shared_gate={self.shared_gate}, activation={self.activation}")
