"""The fast time loop of linear PreRNN layers: the recurrence with hand-written BPTT.

``LinearRecurrence`` computes exactly what ``PreRNNLinear``'s reference path
(``cells.py``: input terms, then the loop through autograd) computes, as one
autograd node:

* forward: per step one ``addmm`` for ``U h_{t-1}`` (+ bias) and a handful of
  elementwise ops written into preallocated buffers; the activated gates are kept
  for the backward pass (nothing is recomputed);
* backward: per step the elementwise gate derivatives and one ``mm`` for
  ``dh_{t-1}``; the gradient of U over all T steps is then ONE GEMM
  ``dA^T (T*B x G*H) @ H_prev (T*B x H)`` instead of T outer products (the
  per-step weight-gradient writes are much of what makes autograd's loop slow),
  and the hidden bias's is one sum.

On the CPU the loop runs in C++ (``prernn/csrc/recurrence.cpp``: each step's gate
math fused into one vectorised pass, the step GEMM through oneDNN's brgemm
micro-kernel, both split over torch's threads); the Python functions below are its
twin, used on GPUs and where the extension cannot be built (``prernn.kernels``).

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

aten = torch.ops.aten

#: φ(a) and dL/da from (dL/dφ, φ(a)) for every activation a PreRNN layer may use.
FORWARD = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda a: a}
BACKWARD = {
    "relu": lambda g, y: aten.threshold_backward(g, y, 0),
    "tanh": aten.tanh_backward,
    "sigmoid": aten.sigmoid_backward,
    "identity": lambda g, y: g,
}


# Each cell: forward(xs, W, bias, h0, c0, act) -> (hs (T+1, B, H) with h0 first, saved) and
# backward(dhs (T, B, H), W, hs, saved, act_grad) -> (dxs (T, B, G, H), dhg (T, B, G*H), dh0[, dc0 for LSTM]).
# xs is time-major (T, B, G, H); dhg is the gradient of the hidden term U h_{t-1} + bias.


def vrnn_forward(xs, W, bias, h0, c0, act):
    T, B, _, H = xs.shape
    xs = xs.reshape(T, B, H)
    hs = xs.new_empty(T + 1, B, H)
    hs[0] = h0
    Wt = W.t()
    for t in range(T):
        hs[t + 1] = act(torch.addmm(xs[t], hs[t], Wt))
    return hs, ()


def vrnn_backward(dhs, W, hs, saved, act_grad):
    T, B, H = dhs.shape
    da = dhs.new_empty(T, B, H)
    dh = dhs.new_zeros(B, H)
    for t in reversed(range(T)):
        da[t] = act_grad(dhs[t] + dh, hs[t + 1])
        dh = da[t] @ W
    return da.unsqueeze(2), da, dh


def lstm_forward(xs, W, bias, h0, c0, act):
    T, B, G, H = xs.shape
    hs, cs = xs.new_empty(T + 1, B, H), xs.new_empty(T + 1, B, H)
    hs[0], cs[0] = h0, c0
    gates = xs.new_empty(T, B, G, H)  # σ(i), σ(f), φ(g), σ(o)
    ks = xs.new_empty(T, B, H)  # φ(c_t)
    Wt = W.t()
    for t in range(T):
        a = torch.addmm(xs[t].reshape(B, G * H), hs[t], Wt).view(B, G, H)
        gt = gates[t]
        torch.sigmoid(a, out=gt)
        gt[:, 2] = act(a[:, 2])
        i, f, g, o = gt.unbind(1)
        torch.addcmul(f * cs[t], i, g, out=cs[t + 1])
        ks[t] = act(cs[t + 1])
        torch.mul(o, ks[t], out=hs[t + 1])
    return hs, (cs, gates, ks)


def lstm_backward(dhs, W, hs, saved, act_grad):
    cs, gates, ks = saved
    T, B, G, H = gates.shape
    da = dhs.new_empty(T, B, G, H)
    dgates = dhs.new_empty(B, G, H)
    dh, dc = dhs.new_zeros(B, H), dhs.new_zeros(B, H)
    for t in reversed(range(T)):
        i, f, g, o = gates[t].unbind(1)
        dh = dhs[t] + dh
        dc = dc + act_grad(dh * o, ks[t])
        torch.mul(dc, g, out=dgates[:, 0])
        torch.mul(dc, cs[t], out=dgates[:, 1])
        torch.mul(dh, ks[t], out=dgates[:, 3])
        aten.sigmoid_backward.grad_input(dgates, gates[t], grad_input=da[t])
        da[t, :, 2] = act_grad(dc * i, g)
        dc = dc * f
        dh = da[t].view(B, G * H) @ W
    return da, da.view(T, B, G * H), dh, dc


def gru_forward(xs, W, bias, h0, c0, act):
    T, B, G, H = xs.shape
    hs = xs.new_empty(T + 1, B, H)
    hs[0] = h0
    rz = xs.new_empty(T, B, 2, H)  # σ(r), σ(z)
    ns = xs.new_empty(T, B, H)  # φ(a_n)
    hn = xs.new_empty(T, B, H)  # (U h + c)_n
    Wt = W.t()
    for t in range(T):
        hg = (torch.mm(hs[t], Wt) if bias is None else torch.addmm(bias, hs[t], Wt)).view(B, G, H)
        torch.sigmoid(xs[t, :, :2] + hg[:, :2], out=rz[t])
        hn[t] = hg[:, 2]
        ns[t] = act(torch.addcmul(xs[t, :, 2], rz[t, :, 0], hg[:, 2]))
        torch.lerp(ns[t], hs[t], rz[t, :, 1], out=hs[t + 1])  # (1 - z) n + z h
    return hs, (rz, ns, hn)


def gru_backward(dhs, W, hs, saved, act_grad):
    rz, ns, hn = saved
    T, B, _, H = rz.shape
    dx = dhs.new_empty(T, B, 3, H)
    dhg = dhs.new_empty(T, B, 3, H)
    drz = dhs.new_empty(B, 2, H)
    dh = dhs.new_zeros(B, H)
    for t in reversed(range(T)):
        r, z = rz[t].unbind(1)
        dh = dhs[t] + dh
        dn = act_grad(dh - dh * z, ns[t])
        dx[t, :, 2] = dn
        torch.mul(dn, hn[t], out=drz[:, 0])
        torch.mul(dh, hs[t] - ns[t], out=drz[:, 1])
        aten.sigmoid_backward.grad_input(drz, rz[t], grad_input=dhg[t, :, :2])
        dx[t, :, :2] = dhg[t, :, :2]
        torch.mul(dn, r, out=dhg[t, :, 2])
        dh = torch.addmm(dh * z, dhg[t].view(B, 3 * H), W)
    return dx, dhg.view(T, B, 3 * H), dh


CELLS = {
    "vrnn": (vrnn_forward, vrnn_backward),
    "lstm": (lstm_forward, lstm_backward),
    "gru": (gru_forward, gru_backward),
}


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
        if ctx.kernels is not None:
            hs, *saved = ctx.kernels.forward(cell, xs, weight_hh, hidden_bias, h0, c0,
                                             kernels.ACTIVATION_IDS[activation])
        else:
            hs, saved = CELLS[cell][0](xs, weight_hh, hidden_bias, h0, c0, FORWARD[activation])
        ctx.cell, ctx.activation, ctx.shared = cell, activation, shared
        ctx.saved = saved
        ctx.save_for_backward(xt, weight, weights, weight_hh, hs)
        return hs[1:].transpose(0, 1).contiguous()  # (B, T, H), its own memory: free to modify in place

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        xt, weight, weights, weight_hh, hs = ctx.saved_tensors
        dhs = grad.transpose(0, 1)
        if ctx.kernels is not None:
            act = kernels.ACTIVATION_IDS[ctx.activation]
            dxs, dhg, dh0, *dc0 = ctx.kernels.backward(ctx.cell, dhs, weight_hh, hs, ctx.saved, act)
        else:
            dxs, dhg, dh0, *dc0 = CELLS[ctx.cell][1](dhs, weight_hh, hs, ctx.saved, BACKWARD[ctx.activation])
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
