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
backward), so autograd sees one node per layer: one GEMM for the shared weight and one
for the stacked gate copies, each written into its gates' columns of the (T*B, G, H)
input terms, and never the weights joined (fc6's: a 16384 x 25088 copy, 1.6 GB, per
forward and as much again for its gradient); under autocast in its dtype, with
everything from their result on in fp32. Derivatives of φ are taken from its output (relu, tanh, sigmoid,
identity), as torch's own backward kernels do. Ours, not the paper's (the paper
gives the equations, not an implementation). Double backward is not supported.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import kernels, loops
from .tables import ACTIVATIONS, CELLS

def _cast(t: Tensor | None, dtype: torch.dtype | None) -> Tensor | None:
    return t if t is None or dtype is None else t.to(dtype)


class LinearRecurrence(torch.autograd.Function):
    """A whole linear PreRNN layer as one autograd node: the input terms of all T
    steps, then the time loop.

    ``gemm_dtype`` (autocast's, or None): the input GEMMs run in it, as autocast would run
    them, and everything from their fp32 result on (the hidden term, the gates, the loop and
    its backward) in fp32; the weight gradients come back in fp32."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, copy_weight: Tensor | None, copy_bias: Tensor | None,
                weight_hh: Tensor, hidden_bias: Tensor | None, h0: Tensor, c0: Tensor | None,
                cell: str, activation: str, shared: int, gemm_dtype: torch.dtype | None = None) -> Tensor:
        B, T, D = x.shape
        H = weight_hh.shape[1]
        G = weight_hh.shape[0] // H
        N = T * B
        loop = weight_hh.dtype  # the time loop's dtype (fp32 under autocast): the parameters'
        ctx.dtypes = x.dtype, weight.dtype
        xt = _cast(x.transpose(0, 1).reshape(N, D), gemm_dtype)  # time-major rows
        weight, bias = _cast(weight, gemm_dtype), _cast(bias, gemm_dtype)
        copy_weight, copy_bias = _cast(copy_weight, gemm_dtype), _cast(copy_bias, gemm_dtype)
        if copy_weight is None:  # SIH / VRNN: every gate reads the one shared term
            xs = torch.addmm(bias, xt, weight.t()).to(loop).unsqueeze(1).expand(-1, G, -1)
        else:  # one GEMM per weight; only their (N, G, H) results are joined, in gate order
            own = torch.addmm(bias, xt, weight.t()).to(loop).view(N, 1, H)
            copies = torch.addmm(copy_bias, xt, copy_weight.t()).to(loop).view(N, G - 1, H)
            xs = torch.cat([copies[:, :shared], own, copies[:, shared:]], 1)
        if hidden_bias is not None and cell != "gru":  # the GRU's hidden bias sits inside r * (U h + c)
            xs = xs + hidden_bias.view(G, H)
        xs = xs.contiguous().view(T, B, G, H)  # a copy only for SIH's expanded shared term
        ctx.kernels = kernels.load() if xs.device.type == "cpu" else None
        c, act = CELLS[cell], ACTIVATIONS[activation]
        if ctx.kernels is not None:
            hs, *saved = ctx.kernels.forward(c.kernel_id, xs, weight_hh, hidden_bias, h0, c0, act.kernel_id)
        else:
            hs, saved = loops.functions(c, xs.device)[0](xs, weight_hh, hidden_bias, h0, c0, act.fn)
        ctx.cell, ctx.activation, ctx.shared = cell, activation, shared
        ctx.saved = saved
        ctx.save_for_backward(xt, weight, copy_weight, weight_hh, hs)
        return hs[1:].transpose(0, 1).contiguous()  # (B, T, H), its own memory: free to modify in place

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        xt, weight, copy_weight, weight_hh, hs = ctx.saved_tensors
        x_dtype, param_dtype = ctx.dtypes
        dhs = grad.transpose(0, 1).to(hs.dtype)
        c, act = CELLS[ctx.cell], ACTIVATIONS[ctx.activation]
        if ctx.kernels is not None:
            dxs, dhg, dh0, *dc0 = ctx.kernels.backward(c.kernel_id, dhs, weight_hh, hs, ctx.saved, act.kernel_id)
        else:
            dxs, dhg, dh0, *dc0 = loops.functions(c, dhs.device)[1](dhs, weight_hh, hs, ctx.saved, act.grad)
        ctx.saved = None
        T, B, G, H = dxs.shape
        N = T * B
        flat = dhg.reshape(N, G * H)
        d_weight_hh = flat.t() @ hs[:-1].reshape(N, H)  # all T steps in one GEMM
        d_hidden_bias = flat.sum(0) if ctx.needs_input_grad[6] else None
        want_dx = ctx.needs_input_grad[0]
        low = lambda t: t.to(xt.dtype)  # noqa: E731  (the GEMMs' dtype; biases' sums stay fp32)
        d_copy_weight = d_copy_bias = None
        if copy_weight is None:  # SIH / VRNN: the shared term's gradient is the sum over gates
            ds = dxs.sum(2).reshape(N, H)
            d_weight, d_bias = low(ds).t() @ xt, ds.sum(0)
            dx = low(ds) @ weight if want_dx else None
        else:  # one GEMM per weight, each reading its gates' gradient
            i = ctx.shared
            ds = dxs[:, :, i].reshape(N, H)
            dc = torch.cat([dxs[:, :, :i], dxs[:, :, i + 1:]], 2).reshape(N, (G - 1) * H)
            d_weight, d_bias = low(ds).t() @ xt, ds.sum(0)
            d_copy_weight, d_copy_bias = low(dc).t() @ xt, dc.sum(0)
            dx = torch.addmm(low(ds) @ weight, low(dc), copy_weight) if want_dx else None
        if dx is not None:
            dx = dx.view(T, B, -1).transpose(0, 1).to(x_dtype)
        up = lambda t: None if t is None else t.to(param_dtype)  # noqa: E731  (gradients in the parameters' dtype)
        return (dx, up(d_weight), up(d_bias), up(d_copy_weight), up(d_copy_bias), d_weight_hh, d_hidden_bias,
                dh0, (dc0 or [None])[0], None, None, None, None)
