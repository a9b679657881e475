#include "braid/nn/fused.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cmath>

namespace braid::nn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<bool> g_fused{false};

constexpr int64_t kMinRowsPerChunk = 16;

// Rows [0, n) in `chunks` contiguous chunks, each run on at::parallel_for; chunk c gets rows
// [c n / chunks, (c + 1) n / chunks). A fixed chunking keeps per-chunk partial sums (the weight and bias
// gradients) independent of how the pool schedules them: the same bits on every run.
int64_t chunk_count(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n / kMinRowsPerChunk));
}
template <typename F>
void for_chunks(int64_t n, int64_t chunks, const F& f) {  // f(chunk, row0, row1)
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c, c * n / chunks, (c + 1) * n / chunks);
  });
}

void check_inputs(const char* op, const at::Tensor& x, const at::Tensor& p, const char* pname) {
  TORCH_CHECK(x.device().is_cpu() && p.device().is_cpu(), op, ": CPU tensors only (got ", x.device(), ", ", p.device(), ")");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op, ": float or double only, got ",
              x.scalar_type());
  TORCH_CHECK(p.scalar_type() == x.scalar_type(), op, ": ", pname, " is ", p.scalar_type(), ", the input ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1 && p.dim() == 1 && x.size(-1) == p.size(0), op, ": ", pname, " ", p.sizes(),
              " does not match the input's last dim (input ", x.sizes(), ")");
}

template <typename T>
inline T gelu_of(T z) {
  return T(0.5) * z * (T(1) + std::erf(z * T(M_SQRT1_2)));
}
template <typename T>
inline T gelu_slope(T z) {  // d gelu / dz = Phi(z) + z phi(z)
  const T cdf = T(0.5) * (T(1) + std::erf(z * T(M_SQRT1_2)));
  const T pdf = std::exp(T(-0.5) * z * z) * T(0.398942280401432677939946059934);
  return cdf + z * pdf;
}

struct BiasGeluFn : public torch::autograd::Function<BiasGeluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& bias) {
    auto xc = x.contiguous(), bc = bias.contiguous();
    auto y = at::empty_like(xc);
    const int64_t F = bc.numel(), N = F ? xc.numel() / F : 0;
    AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "bias_gelu", [&] {
      const scalar_t* px = xc.data_ptr<scalar_t>();
      const scalar_t* pb = bc.data_ptr<scalar_t>();
      scalar_t* py = y.data_ptr<scalar_t>();
      for_chunks(N, chunk_count(N), [&](int64_t, int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const scalar_t* xr = px + r * F;
          scalar_t* yr = py + r * F;
          for (int64_t j = 0; j < F; ++j) yr[j] = gelu_of<scalar_t>(xr[j] + pb[j]);
        }
      });
    });
    ctx->save_for_backward({xc, bc});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &b = saved[1];
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    auto go = grads[0].contiguous();
    auto gx = at::empty_like(x);
    const int64_t F = b.numel(), N = F ? x.numel() / F : 0, chunks = chunk_count(N);
    auto partial = at::zeros({chunks, F}, b.options());  // per-chunk sums of the bias gradient
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_gelu_backward", [&] {
      const scalar_t* px = x.data_ptr<scalar_t>();
      const scalar_t* pb = b.data_ptr<scalar_t>();
      const scalar_t* pg = go.data_ptr<scalar_t>();
      scalar_t* pgx = gx.data_ptr<scalar_t>();
      scalar_t* pp = partial.data_ptr<scalar_t>();
      for_chunks(N, chunks, [&](int64_t c, int64_t r0, int64_t r1) {
        scalar_t* acc = pp + c * F;
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t j = 0; j < F; ++j) {
            const scalar_t gz = pg[r * F + j] * gelu_slope<scalar_t>(px[r * F + j] + pb[j]);
            pgx[r * F + j] = gz;
            acc[j] += gz;
          }
        }
      });
    });
    return {gx, partial.sum(0)};
  }
};

struct AddLayerNormFn : public torch::autograd::Function<AddLayerNormFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& r, const at::Tensor& w,
                               const at::Tensor& b, double eps) {
    auto xc = x.contiguous(), rc = r.contiguous(), wc = w.contiguous(), bc = b.contiguous();
    auto h = at::empty_like(xc), y = at::empty_like(xc);
    const int64_t D = wc.numel(), N = D ? xc.numel() / D : 0;
    auto mean = at::empty({N}, xc.options()), rstd = at::empty({N}, xc.options());
    AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "add_layer_norm", [&] {
      const scalar_t *px = xc.data_ptr<scalar_t>(), *pr = rc.data_ptr<scalar_t>();
      const scalar_t *pw = wc.data_ptr<scalar_t>(), *pb = bc.data_ptr<scalar_t>();
      scalar_t *ph = h.data_ptr<scalar_t>(), *py = y.data_ptr<scalar_t>();
      scalar_t *pm = mean.data_ptr<scalar_t>(), *ps = rstd.data_ptr<scalar_t>();
      for_chunks(N, chunk_count(N), [&](int64_t, int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
          scalar_t* hr = ph + i * D;
          double sum = 0;  // (double sums: float rows of a few thousand stay exact to ~1e-7)
          for (int64_t j = 0; j < D; ++j) {
            hr[j] = px[i * D + j] + pr[i * D + j];
            sum += hr[j];
          }
          const double mu = sum / D;
          double ss = 0;
          for (int64_t j = 0; j < D; ++j) ss += (hr[j] - mu) * (hr[j] - mu);
          const double rs = 1.0 / std::sqrt(ss / D + eps);
          const auto m = static_cast<scalar_t>(mu), s = static_cast<scalar_t>(rs);
          pm[i] = m;
          ps[i] = s;
          scalar_t* yr = py + i * D;
          for (int64_t j = 0; j < D; ++j) yr[j] = (hr[j] - m) * s * pw[j] + pb[j];
        }
      });
    });
    ctx->save_for_backward({h, wc, mean, rstd});
    return {h, y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const at::Tensor& gh = grads[0];
    if (!grads[1].defined()) {  // only h was used
      auto g = gh.defined() ? gh : at::Tensor();
      return {g, g, at::Tensor(), at::Tensor(), at::Tensor()};
    }
    auto gy = grads[1].contiguous();
    auto ghc = gh.defined() ? gh.contiguous() : at::Tensor();
    auto dh = at::empty_like(h);
    const int64_t D = w.numel(), N = D ? h.numel() / D : 0, chunks = chunk_count(N);
    auto partial = at::zeros({2, chunks, D}, w.options());  // per-chunk sums: [0] weight grad, [1] bias grad
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "add_layer_norm_backward", [&] {
      const scalar_t *ph = h.data_ptr<scalar_t>(), *pw = w.data_ptr<scalar_t>();
      const scalar_t *pm = mean.data_ptr<scalar_t>(), *ps = rstd.data_ptr<scalar_t>();
      const scalar_t* pgy = gy.data_ptr<scalar_t>();
      const scalar_t* pgh = ghc.defined() ? ghc.data_ptr<scalar_t>() : nullptr;
      scalar_t* pdh = dh.data_ptr<scalar_t>();
      scalar_t* pp = partial.data_ptr<scalar_t>();
      for_chunks(N, chunks, [&](int64_t c, int64_t r0, int64_t r1) {
        scalar_t* gw = pp + c * D;
        scalar_t* gb = pp + (chunks + c) * D;
        for (int64_t i = r0; i < r1; ++i) {
          const scalar_t m = pm[i], s = ps[i];
          const scalar_t* hr = ph + i * D;
          const scalar_t* gr = pgy + i * D;
          double s1 = 0, s2 = 0;  // sum(dxhat), sum(dxhat * xhat)
          for (int64_t j = 0; j < D; ++j) {
            const scalar_t xhat = (hr[j] - m) * s, dxhat = gr[j] * pw[j];
            s1 += dxhat;
            s2 += dxhat * xhat;
            gw[j] += gr[j] * xhat;
            gb[j] += gr[j];
          }
          const auto a = static_cast<scalar_t>(s1 / D), bb = static_cast<scalar_t>(s2 / D);
          scalar_t* dr = pdh + i * D;
          for (int64_t j = 0; j < D; ++j) {
            const scalar_t xhat = (hr[j] - m) * s;
            dr[j] = s * (gr[j] * pw[j] - a - xhat * bb) + (pgh ? pgh[i * D + j] : scalar_t(0));
          }
        }
      });
    });
    auto sums = partial.sum(1);  // [2, D]
    return {dh, dh, sums[0], sums[1], at::Tensor()};
  }
};

}  // namespace

at::Tensor bias_gelu(const at::Tensor& x, const at::Tensor& bias) {
  check_inputs("bias_gelu", x, bias, "bias");
  return BiasGeluFn::apply(x, bias);
}

std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& x, const at::Tensor& r, const at::Tensor& weight,
                                                 const at::Tensor& bias, double eps) {
  check_inputs("add_layer_norm", x, weight, "weight");
  check_inputs("add_layer_norm", x, bias, "bias");
  TORCH_CHECK(r.sizes() == x.sizes() && r.scalar_type() == x.scalar_type() && r.device().is_cpu(),
              "add_layer_norm: the residual ", r.sizes(), " ", r.scalar_type(), " must match the input ", x.sizes(), " ",
              x.scalar_type());
  auto out = AddLayerNormFn::apply(x, r, weight, bias, eps);
  return {out[0], out[1]};
}

void set_fused_kernels(bool on) { g_fused.store(on); }
bool fused_kernels() { return g_fused.load(); }

}  // namespace braid::nn
