"""The fast time loop of linear PreRNN layers: the recurrence with hand-written BPTT.

``LinearRecurrence`` computes exactly what ``PreRNNLinear``'s reference path
(``layers.py``: input terms, then ``steps.py`` through autograd) computes, as one
autograd node:

* forward: per step one ``addmm`` for ``U h_{t-1}`` (+ bias) and a handful of
  elementwise ops written into preallocated buffers; the activated gates are kept
  for the backward pass (nothing is recomputed);
* backward: per step the elementwise gate derivatives and one ``mm`` for
  ``dh_{t-1}``; the gradient of U over all T steps is then ONE GEMM
  ``dA^T (T*B x G*H) @ H_prev (T*B x H)`` instead of T outer products (the
  per-step weight-gradient writes are much of what makes autograd's loop slow),
  and the hidden bias's is one sum.

On the CPU the loop runs in C++ (``csrc/recurrence.cpp``: each step's gate
math fused into one vectorised pass, the step GEMM through oneDNN's brgemm
micro-kernel, both split over torch's threads); ``loops.py`` is its twin in Python,
used on GPUs and where the extension cannot be built (``kernels.py``).

The input terms of all T steps are batched GEMMs inside the node (forward and
backward), so autograd sees one node per layer. Derivatives of φ are taken from its output (relu, tanh, sigmoid,
identity), as torch's own backward kernels do. Ours, not the paper's (the paper
gives the equations, not an implementation). Double backward is not supported.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import kernels
from .tables import ACTIVATIONS, CELLS

def _in_gate_order(shared: Tensor, copies: Tensor, index: int) -> Tensor:
    """The shared term's rows and the stacked gate copies' rows as one (G*H, ...) tensor in the
    cell's gate order (the shared gate's rows at `index`): one GEMM for all input terms."""
    rows = index * shared.shape[0]
    return torch.cat([copies[:rows], shared, copies[rows:]])


class LinearRecurrence(torch.autograd.Function):
    """A whole linear PreRNN layer as one autograd node: the input terms of all T
    steps, then the time loop. The gate variant's input weights are concatenated
    in gate order once per call, so that its input terms, their weight gradient and
    dx are one GEMM each instead of one per run of gates (at the mini profile's
    sizes a GEMM call costs more than the copy)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, copy_weight: Tensor | None, copy_bias: Tensor | None,
                weight_hh: Tensor, hidden_bias: Tensor | None, h0: Tensor, c0: Tensor | None,
                cell: str, activation: str, shared: int) -> Tensor:
        B, T, D = x.shape
        H = weight_hh.shape[1]
        G = weight_hh.shape[0] // H
        xt = x.transpose(0, 1).reshape(T * B, D)  # time-major rows
        weights = None  # the gate variant's input weights in gate order (G*H x D), kept for dx
        if copy_weight is None:  # SIH / VRNN: every gate reads the one shared term
            xs = torch.addmm(bias, xt, weight.t()).unsqueeze(1).expand(-1, G, -1)
        else:
            weights = _in_gate_order(weight, copy_weight, shared)
            xs = torch.addmm(_in_gate_order(bias, copy_bias, shared), xt, weights.t()).view(T * B, G, H)
        if hidden_bias is not None and cell != "gru":  # the GRU's hidden bias sits inside r * (U h + c)
            xs = xs + hidden_bias.view(G, H)
        xs = xs.contiguous().view(T, B, G, H)  # a copy only for SIH's expanded shared term
        ctx.kernels = kernels.load() if xs.device.type == "cpu" else None
        c, act = CELLS[cell], ACTIVATIONS[activation]
        if ctx.kernels is not None:
            hs, *saved = ctx.kernels.forward(c.kernel_id, xs, weight_hh, hidden_bias, h0, c0, act.kernel_id)
        else:
            hs, saved = c.forward(xs, weight_hh, hidden_bias, h0, c0, act.fn)
        ctx.cell, ctx.activation, ctx.shared = cell, activation, shared
        ctx.saved = saved
        ctx.save_for_backward(xt, weight, weights, weight_hh, hs)
        return hs[1:].transpose(0, 1).contiguous()  # (B, T, H), its own memory: free to modify in place

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        xt, weight, weights, weight_hh, hs = ctx.saved_tensors
        dhs = grad.transpose(0, 1)
        c, act = CELLS[ctx.cell], ACTIVATIONS[ctx.activation]
        if ctx.kernels is not None:
            dxs, dhg, dh0, *dc0 = ctx.kernels.backward(c.kernel_id, dhs, weight_hh, hs, ctx.saved, act.kernel_id)
        else:
            dxs, dhg, dh0, *dc0 = c.backward(dhs, weight_hh, hs, ctx.saved, act.grad)
        ctx.saved = None
        T, B, G, H = dxs.shape
        N = T * B
        flat = dhg.reshape(N, G * H)
        d_weight_hh = flat.t() @ hs[:-1].reshape(N, H)  # all T steps in one GEMM
        d_hidden_bias = flat.sum(0) if ctx.needs_input_grad[6] else None
        want_dx = ctx.needs_input_grad[0]
        if weights is None:  # SIH / VRNN: the shared term's gradient is the sum over gates
            ds = dxs.sum(2).reshape(N, H)
            d_weight, d_bias, d_copy_weight, d_copy_bias = ds.t() @ xt, ds.sum(0), None, None
            dx = ds @ weight if want_dx else None
        else:  # all gates at once, then the shared gate's rows and the copies' rows apart
            d = dxs.reshape(N, G * H)
            d_weights, d_biases = d.t() @ xt, d.sum(0)
            dx = d @ weights if want_dx else None
            rows = slice(ctx.shared * H, (ctx.shared + 1) * H)
            d_weight, d_bias = d_weights[rows], d_biases[rows]
            d_copy_weight = torch.cat([d_weights[:rows.start], d_weights[rows.stop:]])
            d_copy_bias = torch.cat([d_biases[:rows.start], d_biases[rows.stop:]])
        if dx is not None:
            dx = dx.view(T, B, -1).transpose(0, 1)
        return (dx, d_weight, d_bias, d_copy_weight, d_copy_bias, d_weight_hh, d_hidden_bias,
                dh0, (dc0 or [None])[0], None, None, None)
