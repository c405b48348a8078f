"""The fast time loop of each cell in Python, with hand-written BPTT: the twin of the C++
loop (``csrc/recurrence.cpp``), used on GPUs and where the extension cannot be built.

Each cell: forward(xs, W, bias, h0, c0, act) -> (hs (T+1, B, H) with h0 first, saved) and
backward(dhs (T, B, H), W, hs, saved, act_grad) -> (dxs (T, B, G, H), dhg (T, B, G*H), dh0[, dc0
for LSTM]). xs is time-major (T, B, G, H); dhg is the gradient of the hidden term U h_{t-1} + bias.
``act`` is the activation's function, ``act_grad(g, y)`` its derivative from its output
(``tables.ACTIVATIONS``). Activated gates are kept for the backward pass, nothing is recomputed.
"""

from __future__ import annotations

import torch

aten = torch.ops.aten

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
