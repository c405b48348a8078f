// The PreRNN time loop on the CPU: the same forward and backward as the Python
// functions in prernn/recurrent/loops.py (which document the buffers and the math), with each
// step's gate math fused into one pass over the (B, H) elements instead of a dozen
// tensor ops. The per-step GEMMs go through oneDNN's brgemm micro-kernel for float (see
// `StepGemm`), ATen's otherwise, split with the gate math over torch's threads. Built on
// first use by prernn/recurrent/kernels.py, for the CPU's instruction set.
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/native/CPUBlas.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

using torch::Tensor;

namespace {

// The ids of prernn/recurrent/tables.py (CELLS[..].kernel_id, ACTIVATIONS[..].kernel_id): kernels.py
// checks that these enums agree with the tables before it builds this file.
enum CellId { VRNN = 0, LSTM = 1, GRU = 2 };
enum Act { RELU = 0, TANH = 1, SIGMOID = 2, IDENTITY = 3 };

template <typename T> inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }

template <int A, typename T> inline T act(T x) {
  switch (A) {
    case RELU: return std::max(x, T(0));
    case TANH: return std::tanh(x);
    case SIGMOID: return sigm(x);
    default: return x;
  }
}

// dL/da from dL/dy and y = act(a), as torch's own backward kernels compute it.
template <int A, typename T> inline T act_grad(T g, T y) {
  switch (A) {
    case RELU: return y > T(0) ? g : T(0);
    case TANH: return g * (T(1) - y * y);
    case SIGMOID: return g * y * (T(1) - y);
    default: return g;
  }
}

// out = σ(in) over n contiguous elements, computed as ATen's own sigmoid kernel computes it, in
// vectors as wide as the build targets (prernn/kernels.py builds for the CPU's capability).
template <typename T> void sigmoid(const T* in, T* out, int64_t n) {
  using V = at::vec::Vectorized<T>;
  int64_t i = 0;
  for (; i + V::size() <= n; i += V::size())
    ((V(T(0)) - V::loadu(in + i)).exp() + V(T(1))).reciprocal().store(out + i);
  for (; i < n; ++i) out[i] = sigm(in[i]);
}

template <typename T> inline T sigm_grad(T g, T y) { return g * y * (T(1) - y); }

template <typename T> T* ptr(const Tensor& t) { return t.data_ptr<T>(); }

// Step t of a contiguous time-major buffer, as a raw pointer (no tensor op, no dispatch).
template <typename T> T* at_step(const Tensor& x, int64_t t) { return x.data_ptr<T>() + t * x.stride(0); }

// Each step of a (T, B, ...) buffer as a (B, rest) matrix for the GEMMs, made once per call.
std::vector<Tensor> steps_of(const Tensor& x) { return x.view({x.size(0), x.size(1), -1}).unbind(0); }

// Whether oneDNN's float brgemm micro-kernel runs on this CPU (it needs AVX2 or better and a
// torch built with oneDNN's ukernel API); tried once per process.
bool brgemm_works() {
  static const bool ok = [] {
    try {
      float a = 2, b = 3, c = 0;
      at::native::cpublas::brgemm(1, 1, 1, 1, 1, 1, false, &a, &b, &c, false);
      at::native::cpublas::brgemm_release(false);
      return c == 6.f;
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

// U^T as a contiguous matrix, copied by 8 x 8 tiles: 19 us for 512 x 128 floats, against 36 us for
// ATen's copy and 60 us for 16 x 16 tiles (whose 16 destination rows 2 KiB apart share a cache set).
// Row blocks of at least 16K elements go to torch's threads.
template <typename T> Tensor transposed(const Tensor& U_in) {
  const Tensor U = U_in.contiguous();
  const int64_t R = U.size(0), C = U.size(1), R8 = R / 8 * 8, C8 = C / 8 * 8;
  Tensor out = U.new_empty({C, R});
  const T* s = ptr<T>(U);
  T* d = ptr<T>(out);
  at::parallel_for(0, R8 / 8, std::max<int64_t>(1, (1 << 14) / (8 * C)), [&](int64_t i0, int64_t i1) {
    for (int64_t r0 = 8 * i0; r0 < 8 * i1; r0 += 8)
      for (int64_t c0 = 0; c0 < C8; c0 += 8)
        for (int64_t c = 0; c < 8; ++c)
          for (int64_t r = 0; r < 8; ++r) d[(c0 + c) * R + r0 + r] = s[(r0 + r) * C + c0 + c];
  });
  for (int64_t r = 0; r < R; ++r)  // the edges outside whole tiles
    for (int64_t c = r < R8 ? C8 : 0; c < C; ++c) d[c * R + r] = s[r * C + c];
  return out;
}

// The per-step GEMM with U (G*H x H): h @ U^T in the forward, d @ U in the backward, one call per
// step writing C (B x N) = A (B x K) @ op(U), plus C's old value when `add`. With B = 8 rows these
// are small or memory-bound, and MKL's sgemm spends about as long handing them to its OpenMP team
// as computing them. So float goes to oneDNN's brgemm micro-kernel, one column block per torch
// thread: timed while writing this, 8 x 128 x 512 took 9.3 us on one thread and 5.4 us on two,
// against MKL's 13-17 us; the layers' own figures are in BENCHMARKS.md. brgemm wants op(U) as a
// row-major K x N matrix, so U^T is transposed once per call.
template <typename T> struct StepGemm {
  bool micro;
  Tensor B;  // op(U) as the K x N right-hand side
  StepGemm(const Tensor& U, bool transpose)
      : micro(std::is_same_v<T, float> && brgemm_works()),
        B(transpose ? (micro ? transposed<T>(U) : U.t()) : U.contiguous()) {}

  void operator()(const Tensor& A, const Tensor& C, bool add) const {
    if constexpr (std::is_same_v<T, float>) {
      if (micro) {
        const int64_t M = A.size(0), K = A.size(1), N = B.size(1);
        const float *a = ptr<float>(A), *b = ptr<float>(B);
        float* c = ptr<float>(C);
        // column blocks of at least 64, one per thread
        at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
          at::native::cpublas::brgemm(M, n1 - n0, K, K, N, N, add, a, b + n0, c + n0, false);
        });
        return;
      }
    }
    Tensor out = C;
    if (add) out.addmm_(A, B);
    else at::mm_out(out, A, B);
  }

  // C = X + A @ op(U), C and X (B x G*H) made of G gate blocks of H columns, then f(j0, j1): both
  // split over torch's threads by units, i.e. columns [j0, j1) of every gate block, so that each
  // thread's gate math reads only what its own GEMMs wrote and one fork per step does it all.
  template <typename F> void by_units(const Tensor& A, const T* X, const Tensor& C, int64_t G, int64_t H,
                                      const F& f) const {
    const int64_t M = A.size(0), K = A.size(1), N = G * H;
    T* c = ptr<T>(C);
    if constexpr (std::is_same_v<T, float>) {
      if (micro) {
        const float *a = ptr<float>(A), *b = ptr<float>(B);
        at::parallel_for(0, H, 16, [&](int64_t j0, int64_t j1) {
          for (int64_t g = 0; g < G; ++g) {
            const int64_t col = g * H + j0, n = j1 - j0;
            for (int64_t r = 0; r < M; ++r) std::memcpy(c + r * N + col, X + r * N + col, n * sizeof(T));
            at::native::cpublas::brgemm(M, n, K, K, N, N, true, a, b + col, c + col, false);
          }
          f(j0, j1);
        });
        return;
      }
    }
    std::memcpy(c, X, M * N * sizeof(T));
    (*this)(A, C, true);
    f(0, H);
  }
};

// ---- VRNN: h_t = act(x_t + U h_{t-1}) ----

template <typename T, int A> void vrnn_fwd(const Tensor& xs, const Tensor& W, const Tensor& hs) {
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  const StepGemm<T> hU(W, true);
  auto h = steps_of(hs);
  for (int64_t t = 0; t < steps; ++t) {
    T* p = at_step<T>(hs, t + 1);
    hU.by_units(h[t], at_step<T>(xs, t), h[t + 1], 1, H, [&](int64_t j0, int64_t j1) {
      for (int64_t b = 0; b < B; ++b)
        _Pragma("omp simd") for (int64_t j = j0; j < j1; ++j) p[b * H + j] = act<A>(p[b * H + j]);
    });
  }
}

template <typename T, int A> void vrnn_bwd(const Tensor& dhs, const Tensor& W, const Tensor& hs, const Tensor& da,
                                    Tensor& dh) {
  const StepGemm<T> dU(W, false);
  const int64_t steps = dhs.size(0), n = dhs.size(1) * dhs.size(2);
  const auto d = steps_of(da);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T *g = at_step<T>(dhs, t), *y = at_step<T>(hs, t + 1), *r = ptr<T>(dh);
    T* dt = at_step<T>(da, t);
    for (int64_t j = 0; j < n; ++j) dt[j] = act_grad<A>(g[j] + r[j], y[j]);
    dU(d[t], dh, false);
  }
}

// ---- LSTM: gates i, f, g, o; c_t = f c_{t-1} + i act(g); h_t = o act(c_t) ----

template <typename T, int A> void lstm_fwd(const Tensor& xs, const Tensor& W, const Tensor& hs, const Tensor& cs,
                                    const Tensor& gates, const Tensor& ks) {
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  const StepGemm<T> hU(W, true);
  auto h = steps_of(hs);
  Tensor pre = xs.new_empty({B, 4 * H});
  for (int64_t t = 0; t < steps; ++t) {
    T *g0 = at_step<T>(gates, t), *c = at_step<T>(cs, t + 1), *k = at_step<T>(ks, t), *hn = at_step<T>(hs, t + 1);
    const T *p0 = ptr<T>(pre), *cp = at_step<T>(cs, t);
    hU.by_units(h[t], at_step<T>(xs, t), pre, 4, H, [&](int64_t j0, int64_t j1) {
      for (int64_t b = 0; b < B; ++b) {
        const T* p = p0 + b * 4 * H;
        T* g = g0 + b * 4 * H;
        for (int64_t q : {0, 1, 3}) sigmoid(p + q * H + j0, g + q * H + j0, j1 - j0);  // i, f, o
        _Pragma("omp simd") for (int64_t j = j0; j < j1; ++j) {  // the units are independent
          const int64_t e = b * H + j;
          g[2 * H + j] = act<A>(p[2 * H + j]);
          const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
          c[e] = f * cp[e] + i * gg;
          k[e] = act<A>(c[e]);
          hn[e] = o * k[e];
        }
      }
    });
  }
}

template <typename T, int A> void lstm_bwd(const Tensor& dhs, const Tensor& W, const Tensor& cs, const Tensor& gates,
                                    const Tensor& ks, const Tensor& da, Tensor& dh, const Tensor& dc) {
  const StepGemm<T> dU(W, false);
  const int64_t steps = gates.size(0), B = gates.size(1), H = gates.size(3);
  const auto d_steps = steps_of(da);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T *g = at_step<T>(gates, t), *dht = at_step<T>(dhs, t), *cp = at_step<T>(cs, t), *k = at_step<T>(ks, t);
    T *d = at_step<T>(da, t), *dhr = ptr<T>(dh), *dcr = ptr<T>(dc);
    for (int64_t b = 0; b < B; ++b, g += 4 * H, d += 4 * H) {
      _Pragma("omp simd") for (int64_t j = 0; j < H; ++j) {  // the units are independent
        const int64_t e = b * H + j;
        const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
        const T dhe = dht[e] + dhr[e];
        const T dce = dcr[e] + act_grad<A>(dhe * o, k[e]);
        d[j] = sigm_grad(dce * gg, i);
        d[H + j] = sigm_grad(dce * cp[e], f);
        d[2 * H + j] = act_grad<A>(dce * i, gg);
        d[3 * H + j] = sigm_grad(dhe * k[e], o);
        dcr[e] = dce * f;
      }
    }
    dU(d_steps[t], dh, false);
  }
}

// ---- GRU: r, z = σ(x + U h + c); n = act(x_n + r (U h + c)_n); h_t = (1 - z) n + z h ----

template <typename T, int A> void gru_fwd(const Tensor& xs, const Tensor& W, const c10::optional<Tensor>& bias,
                                   const Tensor& hs, const Tensor& rz, const Tensor& ns, const Tensor& hn) {
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  const StepGemm<T> hU(W, true);
  auto h = steps_of(hs);
  Tensor hg = xs.new_empty({B, 3 * H});
  const Tensor c = bias.has_value() ? bias->contiguous() : Tensor();
  for (int64_t t = 0; t < steps; ++t) {
    if (c.defined())
      for (int64_t b = 0; b < B; ++b) std::memcpy(ptr<T>(hg) + b * 3 * H, ptr<T>(c), 3 * H * sizeof(T));
    hU(h[t], hg, c.defined());
    const T *x = at_step<T>(xs, t), *u = ptr<T>(hg), *hp = at_step<T>(hs, t);
    T *s = at_step<T>(rz, t), *n = at_step<T>(ns, t), *m = at_step<T>(hn, t), *hnext = at_step<T>(hs, t + 1);
    for (int64_t b = 0; b < B; ++b, x += 3 * H, u += 3 * H, s += 2 * H) {
      _Pragma("omp simd") for (int64_t j = 0; j < H; ++j) {  // the units are independent
        const int64_t e = b * H + j;
        const T r = sigm(x[j] + u[j]), z = sigm(x[H + j] + u[H + j]);
        s[j] = r, s[H + j] = z;
        m[e] = u[2 * H + j];
        n[e] = act<A>(x[2 * H + j] + r * m[e]);
        hnext[e] = n[e] + z * (hp[e] - n[e]);
      }
    }
  }
}

template <typename T, int A> void gru_bwd(const Tensor& dhs, const Tensor& W, const Tensor& hs, const Tensor& rz,
                                   const Tensor& ns, const Tensor& hn, const Tensor& dx, const Tensor& dhg,
                                   Tensor& dh) {
  const StepGemm<T> dU(W, false);
  const int64_t steps = rz.size(0), B = rz.size(1), H = rz.size(3);
  const auto u_steps = steps_of(dhg);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T *s = at_step<T>(rz, t), *n = at_step<T>(ns, t), *m = at_step<T>(hn, t), *hp = at_step<T>(hs, t);
    const T *dht = at_step<T>(dhs, t), *dhr = ptr<T>(dh);
    T *x = at_step<T>(dx, t), *u = at_step<T>(dhg, t), *q = ptr<T>(dh);  // q[e] replaces dhr[e] after its read
    for (int64_t b = 0; b < B; ++b, s += 2 * H, x += 3 * H, u += 3 * H) {
      _Pragma("omp simd") for (int64_t j = 0; j < H; ++j) {  // the units are independent
        const int64_t e = b * H + j;
        const T r = s[j], z = s[H + j];
        const T dhe = dht[e] + dhr[e];
        const T dn = act_grad<A>(dhe * (T(1) - z), n[e]);
        x[2 * H + j] = dn;
        u[2 * H + j] = dn * r;
        x[j] = u[j] = sigm_grad(dn * m[e], r);
        x[H + j] = u[H + j] = sigm_grad(dhe * (hp[e] - n[e]), z);
        q[e] = dhe * z;
      }
    }
    dU(u_steps[t], dh, true);
  }
}

// Calls f with the activation as a compile-time constant, so that each gate loop is compiled (and
// vectorised) for its activation instead of branching on it per element.
template <typename F> void with_activation(int64_t a, F&& f) {
  switch (a) {
    case RELU: return f(std::integral_constant<int, RELU>());
    case TANH: return f(std::integral_constant<int, TANH>());
    case SIGMOID: return f(std::integral_constant<int, SIGMOID>());
    case IDENTITY: return f(std::integral_constant<int, IDENTITY>());
  }
  TORCH_CHECK(false, "unknown activation id ", a);
}

void check(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), name, " must be a contiguous CPU tensor");
}

}  // namespace

// Returns [hs, *saved] exactly as the Python forward functions do.
std::vector<Tensor> forward(int64_t cell, const Tensor& xs, const Tensor& W,
                            const c10::optional<Tensor>& bias, const Tensor& h0, const c10::optional<Tensor>& c0,
                            int64_t a) {
  at::AutoDispatchBelowADInplaceOrView guard;  // plain kernels: skip autograd's dispatch on every op
  check(xs, "xs");
  const int64_t steps = xs.size(0), B = xs.size(1), H = xs.size(3);
  Tensor hs = xs.new_empty({steps + 1, B, H});
  hs[0].copy_(h0);
  std::vector<Tensor> out{hs};
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "prernn_forward", [&] {
    with_activation(a, [&](auto act_id) {
      constexpr int A = decltype(act_id)::value;
      if (cell == VRNN) {
        vrnn_fwd<scalar_t, A>(xs, W, hs);
      } else if (cell == LSTM) {
        Tensor cs = xs.new_empty({steps + 1, B, H}), gates = xs.new_empty({steps, B, 4, H}),
               ks = xs.new_empty({steps, B, H});
        cs[0].copy_(*c0);
        lstm_fwd<scalar_t, A>(xs, W, hs, cs, gates, ks);
        out.insert(out.end(), {cs, gates, ks});
      } else {
        TORCH_CHECK(cell == GRU, "unknown cell id ", cell);
        Tensor rz = xs.new_empty({steps, B, 2, H}), ns = xs.new_empty({steps, B, H}), hn = xs.new_empty({steps, B, H});
        gru_fwd<scalar_t, A>(xs, W, bias, hs, rz, ns, hn);
        out.insert(out.end(), {rz, ns, hn});
      }
    });
  });
  return out;
}

// Returns [dxs (T, B, G, H), dhg (T, B, G*H), dh0, dc0 (LSTM only)].
std::vector<Tensor> backward(int64_t cell, const Tensor& dhs_in, const Tensor& W, const Tensor& hs,
                             const std::vector<Tensor>& saved, int64_t a) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor dhs = dhs_in.contiguous();
  const int64_t steps = dhs.size(0), B = dhs.size(1), H = dhs.size(2);
  Tensor dh = dhs.new_zeros({B, H});
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(dhs.scalar_type(), "prernn_backward", [&] {
    with_activation(a, [&](auto act_id) {
      constexpr int A = decltype(act_id)::value;
      if (cell == VRNN) {
        Tensor da = dhs.new_empty({steps, B, 1, H});
        vrnn_bwd<scalar_t, A>(dhs, W, hs, da, dh);
        out = {da, da.view({steps, B, H}), dh};
      } else if (cell == LSTM) {
        Tensor da = dhs.new_empty({steps, B, 4, H}), dc = dhs.new_zeros({B, H});
        lstm_bwd<scalar_t, A>(dhs, W, saved[0], saved[1], saved[2], da, dh, dc);
        out = {da, da.view({steps, B, 4 * H}), dh, dc};
      } else {
        TORCH_CHECK(cell == GRU, "unknown cell id ", cell);
        Tensor dx = dhs.new_empty({steps, B, 3, H}), dhg = dhs.new_empty({steps, B, 3, H});
        gru_bwd<scalar_t, A>(dhs, W, hs, saved[0], saved[1], saved[2], dx, dhg, dh);
        out = {dx, dhg.view({steps, B, 3 * H}), dh};
      }
    });
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "PreRNN time loop, forward");
  m.def("backward", &backward, "PreRNN time loop, backward (BPTT)");
}
