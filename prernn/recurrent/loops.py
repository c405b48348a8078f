"""The fast time loop of each cell in Python, with hand-written BPTT: the twin of the C++
loop (``csrc/recurrence.cpp``), used on GPUs and where the extension cannot be built.

On a GPU it runs through ``torch.compile`` (``compiled``; ``Placement.prepare`` turns it on
with ``train.compile``): the T steps, whose shapes are static, become one graph whose
elementwise gate math is fused into a kernel or two per step, where eager mode launches a
dozen (launches are most of a step at the mini profile's sizes). Inductor's default mode,
not CUDA graphs: a graph replay reuses its output buffers, and fc6 and fc7 (same shapes,
same graph) keep their outputs for the backward pass. Anything that cannot be compiled
falls back to these functions as written, with one warning; they are what the compiled
graph is tested against (ours, as is the whole loop).

Each cell: forward(xs, W, bias, h0, c0, act) -> (hs (T+1, B, H) with h0 first, saved) and
backward(dhs (T, B, H), W, hs, saved, act_grad) -> (dxs (T, B, G, H), dhg (T, B, G*H), dh0[, dc0
for LSTM]). xs is time-major (T, B, G, H); dhg is the gradient of the hidden term U h_{t-1} + bias.
``act`` is the activation's function, ``act_grad(g, y)`` its derivative from its output
(``tables.ACTIVATIONS``). Activated gates are kept for the backward pass, nothing is recomputed.
"""

from __future__ import annotations

import warnings

import torch

aten = torch.ops.aten

# devices whose loop runs compiled (``Placement.prepare``: {"cuda"} with train.compile, else none)
compile_on: set[str] = set()

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
    dh, dc = dhs.new_zeros(B, H), dhs.new_zeros(B, H)
    for t in reversed(range(T)):
        i, f, g, o = gates[t].unbind(1)
        dh = dhs[t] + dh
        dc = dc + act_grad(dh * o, ks[t])
        dgates = torch.stack([dc * g, dc * cs[t], dc, dh * ks[t]], 1)  # the candidate's (dc) is replaced below
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
    dh = dhs.new_zeros(B, H)
    for t in reversed(range(T)):
        r, z = rz[t].unbind(1)
        dh = dhs[t] + dh
        dn = act_grad(dh - dh * z, ns[t])
        dx[t, :, 2] = dn
        drz = aten.sigmoid_backward(torch.stack([dn * hn[t], dh * (hs[t] - ns[t])], 1), rz[t])
        dhg[t, :, :2] = drz
        dx[t, :, :2] = drz
        dhg[t, :, 2] = dn * r
        dh = torch.addmm(dh * z, dhg[t].view(B, 3 * H), W)
    return dx, dhg.view(T, B, 3 * H), dh


class Compiled:
    """``fn`` through ``torch.compile`` (one graph, static shapes: a new batch size compiles
    again), or ``fn`` itself from the first call that cannot be compiled on (warned once).
    The loops write only into buffers they allocate, so a failed call runs again as written."""

    def __init__(self, fn):
        self.fn, self.failed = fn, None
        self.compiled = torch.compile(fn, dynamic=False, fullgraph=True)

    def __call__(self, *args):
        if self.failed is None:
            try:  # detached: the loops differentiate by hand, and dynamo would read an input's .grad
                return self.compiled(*(_detached(a) for a in args))
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # no compiler, no triton, an op inductor cannot lower, ...
                self.failed = e
                warnings.warn(f"prernn: the time loop {self.fn.__name__} cannot be compiled here "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); running it "
                              "uncompiled (same results)", stacklevel=2)
        return self.fn(*args)


def _detached(a):
    if isinstance(a, torch.Tensor):
        return a.detach()
    return tuple(_detached(x) for x in a) if isinstance(a, tuple) else a


_compiled: dict = {}


def compiled(fn):
    """The one ``Compiled`` of a loop function (its graphs are shared by every layer and call)."""
    if fn not in _compiled:
        _compiled[fn] = Compiled(fn)
    return _compiled[fn]


def functions(cell, device: torch.device):
    """A cell's (forward, backward) loop for tensors on ``device``: compiled where ``compile_on`` says."""
    if device.type in compile_on:
        return compiled(cell.forward), compiled(cell.backward)
    return cell.forward, cell.backward
