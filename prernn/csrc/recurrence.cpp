// The PreRNN time loop on the CPU: the same forward and backward as the Python
// functions in prernn/bptt.py (which document the buffers and the math), with each
// step's gate math fused into one pass over the (B, H) elements instead of a dozen
// tensor ops. GEMMs stay ATen's (MKL). Built on first use by prernn/kernels.py.
#include <torch/extension.h>

#include <cmath>
#include <vector>

using torch::Tensor;

namespace {

enum Act { RELU = 0, TANH = 1, SIGMOID = 2, IDENTITY = 3 };

template <typename T> inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }

template <typename T> inline T act(int a, T x) {
  switch (a) {
    case RELU: return x > T(0) ? x : T(0);
    case TANH: return std::tanh(x);
    case SIGMOID: return sigm(x);
    default: return x;
  }
}

// dL/da from dL/dy and y = act(a), as torch's own backward kernels compute it.
template <typename T> inline T act_grad(int a, T g, T y) {
  switch (a) {
    case RELU: return y > T(0) ? g : T(0);
    case TANH: return g * (T(1) - y * y);
    case SIGMOID: return g * y * (T(1) - y);
    default: return g;
  }
}

template <typename T> inline T sigm_grad(T g, T y) { return g * y * (T(1) - y); }

template <typename T> T* ptr(const Tensor& t) { return t.data_ptr<T>(); }

// Step t of a contiguous time-major buffer, as a raw pointer (no tensor op, no dispatch).
template <typename T> T* at_step(const Tensor& x, int64_t t) { return x.data_ptr<T>() + t * x.stride(0); }

// Each step of a (T, B, ...) buffer as a (B, rest) matrix for the GEMMs, made once per call.
std::vector<Tensor> steps_of(const Tensor& x) { return x.view({x.size(0), x.size(1), -1}).unbind(0); }

// ---- VRNN: h_t = act(x_t + U h_{t-1}) ----

template <typename T> void vrnn_fwd(const Tensor& xs, const Tensor& W, const Tensor& hs, int a) {
  const int64_t steps = xs.size(0), n = xs.size(1) * xs.size(3);
  const auto Wt = W.t();
  auto x = steps_of(xs), h = steps_of(hs);
  for (int64_t t = 0; t < steps; ++t) {
    at::addmm_out(h[t + 1], x[t], h[t], Wt);
    T* p = at_step<T>(hs, t + 1);
    for (int64_t j = 0; j < n; ++j) p[j] = act(a, p[j]);
  }
}

template <typename T> void vrnn_bwd(const Tensor& dhs, const Tensor& W, const Tensor& hs, const Tensor& da,
                                    Tensor& dh, int a) {
  const int64_t steps = dhs.size(0), n = dhs.size(1) * dhs.size(2);
  const auto d = steps_of(da);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T *g = at_step<T>(dhs, t), *y = at_step<T>(hs, t + 1), *r = ptr<T>(dh);
    T* dt = at_step<T>(da, t);
    for (int64_t j = 0; j < n; ++j) dt[j] = act_grad(a, g[j] + r[j], y[j]);
    at::mm_out(dh, d[t], W);
  }
}

// ---- LSTM: gates i, f, g, o; c_t = f c_{t-1} + i act(g); h_t = o act(c_t) ----

template <typename T> void lstm_fwd(const Tensor& xs, const Tensor& W, const Tensor& hs, const Tensor& cs,
                                    const Tensor& gates, const Tensor& ks, int a) {
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  const auto Wt = W.t();
  auto x = steps_of(xs), h = steps_of(hs), out = steps_of(gates);
  Tensor pre = xs.new_empty({B, 4 * H});
  for (int64_t t = 0; t < steps; ++t) {
    at::addmm_out(pre, x[t], h[t], Wt);
    at::sigmoid_out(out[t], pre);  // ATen's vectorised sigmoid for all four; g is replaced below
    T *g = at_step<T>(gates, t), *c = at_step<T>(cs, t + 1), *k = at_step<T>(ks, t), *hn = at_step<T>(hs, t + 1);
    const T *p = ptr<T>(pre), *cp = at_step<T>(cs, t);
    for (int64_t b = 0; b < B; ++b, g += 4 * H, p += 4 * H) {
      for (int64_t j = 0; j < H; ++j) {
        const int64_t e = b * H + j;
        g[2 * H + j] = act(a, p[2 * H + j]);
        const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
        c[e] = f * cp[e] + i * gg;
        k[e] = act(a, c[e]);
        hn[e] = o * k[e];
      }
    }
  }
}

template <typename T> void lstm_bwd(const Tensor& dhs, const Tensor& W, const Tensor& cs, const Tensor& gates,
                                    const Tensor& ks, const Tensor& da, Tensor& dh, const Tensor& dc, int a) {
  const int64_t steps = gates.size(0), B = gates.size(1), H = gates.size(3);
  const auto d_steps = steps_of(da);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T *g = at_step<T>(gates, t), *dht = at_step<T>(dhs, t), *cp = at_step<T>(cs, t), *k = at_step<T>(ks, t);
    T *d = at_step<T>(da, t), *dhr = ptr<T>(dh), *dcr = ptr<T>(dc);
    for (int64_t b = 0; b < B; ++b, g += 4 * H, d += 4 * H) {
      for (int64_t j = 0; j < H; ++j) {
        const int64_t e = b * H + j;
        const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
        const T dhe = dht[e] + dhr[e];
        const T dce = dcr[e] + act_grad(a, dhe * o, k[e]);
        d[j] = sigm_grad(dce * gg, i);
        d[H + j] = sigm_grad(dce * cp[e], f);
        d[2 * H + j] = act_grad(a, dce * i, gg);
        d[3 * H + j] = sigm_grad(dhe * k[e], o);
        dcr[e] = dce * f;
      }
    }
    at::mm_out(dh, d_steps[t], W);
  }
}

// ---- GRU: r, z = σ(x + U h + c); n = act(x_n + r (U h + c)_n); h_t = (1 - z) n + z h ----

template <typename T> void gru_fwd(const Tensor& xs, const Tensor& W, const c10::optional<Tensor>& bias,
                                   const Tensor& hs, const Tensor& rz, const Tensor& ns, const Tensor& hn, int a) {
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  const auto Wt = W.t();
  auto h = steps_of(hs);
  Tensor hg = xs.new_empty({B, 3 * H});
  for (int64_t t = 0; t < steps; ++t) {
    if (bias.has_value()) at::addmm_out(hg, *bias, h[t], Wt);
    else at::mm_out(hg, h[t], Wt);
    const T *x = at_step<T>(xs, t), *u = ptr<T>(hg), *hp = at_step<T>(hs, t);
    T *s = at_step<T>(rz, t), *n = at_step<T>(ns, t), *m = at_step<T>(hn, t), *hnext = at_step<T>(hs, t + 1);
    for (int64_t b = 0; b < B; ++b, x += 3 * H, u += 3 * H, s += 2 * H) {
      for (int64_t j = 0; j < H; ++j) {
        const int64_t e = b * H + j;
        const T r = sigm(x[j] + u[j]), z = sigm(x[H + j] + u[H + j]);
        s[j] = r, s[H + j] = z;
        m[e] = u[2 * H + j];
        n[e] = act(a, x[2 * H + j] + r * m[e]);
        hnext[e] = n[e] + z * (hp[e] - n[e]);
      }
    }
  }
}

template <typename T> void gru_bwd(const Tensor& dhs, const Tensor& W, const Tensor& hs, const Tensor& rz,
                                   const Tensor& ns, const Tensor& hn, const Tensor& dx, const Tensor& dhg,
                                   Tensor& dh, int a) {
  const int64_t steps = rz.size(0), B = rz.size(1), H = rz.size(3);
  const auto u_steps = steps_of(dhg);
  Tensor direct = dh.new_empty({B, H});
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T *s = at_step<T>(rz, t), *n = at_step<T>(ns, t), *m = at_step<T>(hn, t), *hp = at_step<T>(hs, t);
    const T *dht = at_step<T>(dhs, t), *dhr = ptr<T>(dh);
    T *x = at_step<T>(dx, t), *u = at_step<T>(dhg, t), *q = ptr<T>(direct);
    for (int64_t b = 0; b < B; ++b, s += 2 * H, x += 3 * H, u += 3 * H) {
      for (int64_t j = 0; j < H; ++j) {
        const int64_t e = b * H + j;
        const T r = s[j], z = s[H + j];
        const T dhe = dht[e] + dhr[e];
        const T dn = act_grad(a, dhe * (T(1) - z), n[e]);
        x[2 * H + j] = dn;
        u[2 * H + j] = dn * r;
        x[j] = u[j] = sigm_grad(dn * m[e], r);
        x[H + j] = u[H + j] = sigm_grad(dhe * (hp[e] - n[e]), z);
        q[e] = dhe * z;
      }
    }
    at::addmm_out(dh, direct, u_steps[t], W);
  }
}

void check(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), name, " must be a contiguous CPU tensor");
}

}  // namespace

// Returns [hs, *saved] exactly as the Python forward functions do.
std::vector<Tensor> forward(const std::string& cell, const Tensor& xs, const Tensor& W,
                            const c10::optional<Tensor>& bias, const Tensor& h0, const c10::optional<Tensor>& c0,
                            int64_t a) {
  at::AutoDispatchBelowADInplaceOrView guard;  // plain kernels: skip autograd's dispatch on every op
  check(xs, "xs");
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  Tensor hs = xs.new_empty({steps + 1, B, H});
  hs[0].copy_(h0);
  std::vector<Tensor> out{hs};
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "prernn_forward", [&] {
    if (cell == "vrnn") {
      vrnn_fwd<scalar_t>(xs, W, hs, a);
    } else if (cell == "lstm") {
      Tensor cs = xs.new_empty({steps + 1, B, H}), gates = xs.new_empty({steps, B, 4, H}),
             ks = xs.new_empty({steps, B, H});
      cs[0].copy_(*c0);
      lstm_fwd<scalar_t>(xs, W, hs, cs, gates, ks, a);
      out.insert(out.end(), {cs, gates, ks});
    } else {
      Tensor rz = xs.new_empty({steps, B, 2, H}), ns = xs.new_empty({steps, B, H}), hn = xs.new_empty({steps, B, H});
      gru_fwd<scalar_t>(xs, W, bias, hs, rz, ns, hn, a);
      out.insert(out.end(), {rz, ns, hn});
    }
  });
  return out;
}

// Returns [dxs (T, B, G, H), dhg (T, B, G*H), dh0, dc0 (LSTM only)].
std::vector<Tensor> backward(const std::string& cell, const Tensor& dhs_in, const Tensor& W, const Tensor& hs,
                             const std::vector<Tensor>& saved, int64_t a) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor dhs = dhs_in.contiguous();
  const int64_t steps = dhs.size(0), B = dhs.size(1), H = dhs.size(2);
  Tensor dh = dhs.new_zeros({B, H});
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(dhs.scalar_type(), "prernn_backward", [&] {
    if (cell == "vrnn") {
      Tensor da = dhs.new_empty({steps, B, 1, H});
      vrnn_bwd<scalar_t>(dhs, W, hs, da, dh, a);
      out = {da, da.view({steps, B, H}), dh};
    } else if (cell == "lstm") {
      Tensor da = dhs.new_empty({steps, B, 4, H}), dc = dhs.new_zeros({B, H});
      lstm_bwd<scalar_t>(dhs, W, saved[0], saved[1], saved[2], da, dh, dc, a);
      out = {da, da.view({steps, B, 4 * H}), dh, dc};
    } else {
      Tensor dx = dhs.new_empty({steps, B, 3, H}), dhg = dhs.new_empty({steps, B, 3, H});
      gru_bwd<scalar_t>(dhs, W, hs, saved[0], saved[1], saved[2], dx, dhg, dh, a);
      out = {dx, dhg.view({steps, B, 3 * H}), dh};
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "PreRNN time loop, forward");
  m.def("backward", &backward, "PreRNN time loop, backward (BPTT)");
}
