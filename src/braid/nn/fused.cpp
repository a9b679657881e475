#include "braid/nn/fused.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/BFloat16.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>
#include <mutex>

#include "braid/core/cpu_features.h"

#if defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's avx512fintrin.h (_mm512_undefined_*)
#include <immintrin.h>

#include "braid/nn/gelu_avx512.h"
#define BRAID_FUSED_TRAIN_X86 1
#endif

namespace braid::nn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<bool> g_fused{false};
std::atomic<bool> g_train{true}, g_train_scalar{false};

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

// ---- training kernels: gelu, dropout_add ----

bool train_avx512() {
#ifdef BRAID_FUSED_TRAIN_X86
  static const bool has = detected_cpu_features().avx512f;
  return has && !g_train_scalar.load();
#else
  return false;
#endif
}

inline float to_f(float v) { return v; }
inline float to_f(c10::BFloat16 v) { return static_cast<float>(v); }
template <typename T>
inline T from_f(float v) {
  return static_cast<T>(v);  // c10::BFloat16(float) rounds to nearest even, NaN -> 0x7FC0
}

// Elementwise work over [0, n) in pieces of at least kGrain elements (multiples of 16) on at::parallel_for.
constexpr int64_t kGrain = 1 << 14;
template <typename F>
void for_range(int64_t n, const F& f) {  // f(i0, i1)
  at::parallel_for(0, (n + 15) / 16, kGrain / 16, [&](int64_t w0, int64_t w1) { f(w0 * 16, std::min(n, w1 * 16)); });
}

// The dropout keep decision for element i: a counter-based hash (murmur3's 32-bit finaliser) of the index mixed
// with the call's seed; kept when the top 24 bits are >= thr = round(p 2^24).
inline uint32_t drop_hash(uint32_t i, uint32_t s0, uint32_t s1) {
  uint32_t h = (i * 0x9E3779B1u + s0) ^ s1;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

#ifdef BRAID_FUSED_TRAIN_X86
// 16 lanes (n <= 16 of them valid, the rest 0) of float or bf16 memory as floats, and back (bf16: round to nearest
// even and NaN -> 0x7FC0, as c10::BFloat16). avx512f only: partial bf16 vectors go through a stack buffer.
__attribute__((target("avx512f"))) inline __m512 load16(const float* p, int64_t n) {
  return _mm512_maskz_loadu_ps(n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1), p);
}
__attribute__((target("avx512f"))) inline __m512 load16(const c10::BFloat16* p, int64_t n) {
  __m256i h;
  if (n >= 16) {
    h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  } else {
    alignas(32) uint16_t buf[16] = {0};
    std::memcpy(buf, p, static_cast<size_t>(n) * 2);
    h = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
  }
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
__attribute__((target("avx512f"))) inline void store16(float* p, __m512 v, int64_t n) {
  _mm512_mask_storeu_ps(p, n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1), v);
}
__attribute__((target("avx512f"))) inline void store16(c10::BFloat16* p, __m512 v, int64_t n) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i bias = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)),
                                        _mm512_set1_epi32(0x7FFF));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  const __m256i h = _mm512_cvtepi32_epi16(r);
  if (n >= 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
  } else {
    alignas(32) uint16_t buf[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf), h);
    std::memcpy(p, buf, static_cast<size_t>(n) * 2);
  }
}
__attribute__((target("avx512f"))) inline __mmask16 keep16(uint32_t i0, uint32_t s0, uint32_t s1, uint32_t thr) {
  __m512i h = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(i0)),
                               _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  h = _mm512_xor_si512(_mm512_add_epi32(_mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int>(0x9E3779B1u))),
                                        _mm512_set1_epi32(static_cast<int>(s0))),
                       _mm512_set1_epi32(static_cast<int>(s1)));
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
  h = _mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int>(0x85EBCA6Bu)));
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 13));
  h = _mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int>(0xC2B2AE35u)));
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
  return _mm512_cmpge_epu32_mask(_mm512_srli_epi32(h, 8), _mm512_set1_epi32(static_cast<int>(thr)));
}

template <typename T>
__attribute__((target("avx512f"))) void gelu_avx512_range(const T* z, T* y, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i += 16) store16(y + i, gelu512(load16(z + i, i1 - i)), i1 - i);
}
template <typename T>
__attribute__((target("avx512f"))) void gelu_grad_avx512_range(const T* g, const T* z, T* gz, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i += 16)
    store16(gz + i, _mm512_mul_ps(load16(g + i, i1 - i), gelu_slope512(load16(z + i, i1 - i))), i1 - i);
}
// h = x + keep · o · scale (keep: every lane when mask is null, else the bits written to mask[i / 16])
template <typename T>
__attribute__((target("avx512f"))) void dropout_add_avx512_range(const float* x, const T* o, float* h, int16_t* mask,
                                                                 uint32_t s0, uint32_t s1, uint32_t thr, float scale,
                                                                 int64_t i0, int64_t i1) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t i = i0; i < i1; i += 16) {
    const int64_t n = i1 - i;
    const __m512 ov = load16(o + i, n), xv = load16(x + i, n);
    if (mask) {
      const __mmask16 k = keep16(static_cast<uint32_t>(i), s0, s1, thr);
      mask[i / 16] = static_cast<int16_t>(k);
      store16(h + i, _mm512_add_ps(xv, _mm512_maskz_mul_ps(k, ov, sc)), n);
    } else {
      store16(h + i, _mm512_add_ps(xv, ov), n);
    }
  }
}
template <typename T>
__attribute__((target("avx512f"))) void dropout_grad_avx512_range(const float* g, const int16_t* mask, float scale, T* go,
                                                                  int64_t i0, int64_t i1) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t i = i0; i < i1; i += 16) {
    const __m512 gv = load16(g + i, i1 - i);
    store16(go + i, mask ? _mm512_maskz_mul_ps(static_cast<__mmask16>(mask[i / 16]), gv, sc) : gv, i1 - i);
  }
}
#endif  // BRAID_FUSED_TRAIN_X86

template <typename T>
void gelu_range(const T* z, T* y, int64_t i0, int64_t i1) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return gelu_avx512_range(z, y, i0, i1);
#endif
  for (int64_t i = i0; i < i1; ++i) y[i] = from_f<T>(gelu_of<float>(to_f(z[i])));
}
template <typename T>
void gelu_grad_range(const T* g, const T* z, T* gz, int64_t i0, int64_t i1) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return gelu_grad_avx512_range(g, z, gz, i0, i1);
#endif
  for (int64_t i = i0; i < i1; ++i) gz[i] = from_f<T>(to_f(g[i]) * gelu_slope<float>(to_f(z[i])));
}
template <typename T>
void dropout_add_range(const float* x, const T* o, float* h, int16_t* mask, uint32_t s0, uint32_t s1, uint32_t thr,
                       float scale, int64_t i0, int64_t i1) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return dropout_add_avx512_range(x, o, h, mask, s0, s1, thr, scale, i0, i1);
#endif
  for (int64_t w = i0 / 16; w * 16 < i1; ++w) {
    uint32_t bits = 0;
    for (int64_t l = 0; l < 16 && w * 16 + l < i1; ++l) {
      const int64_t i = w * 16 + l;
      const bool keep = !mask || (drop_hash(static_cast<uint32_t>(i), s0, s1) >> 8) >= thr;
      bits |= static_cast<uint32_t>(keep) << l;
      h[i] = x[i] + (keep ? (mask ? to_f(o[i]) * scale : to_f(o[i])) : 0.0f);
    }
    if (mask) mask[w] = static_cast<int16_t>(bits);
  }
}
template <typename T>
void dropout_grad_range(const float* g, const int16_t* mask, float scale, T* go, int64_t i0, int64_t i1) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return dropout_grad_avx512_range(g, mask, scale, go, i0, i1);
#endif
  for (int64_t i = i0; i < i1; ++i)
    go[i] = from_f<T>(!mask ? g[i] : ((mask[i / 16] >> (i % 16)) & 1) ? g[i] * scale : 0.0f);
}

#define BRAID_FLOAT_OR_BF16(dtype, T, ...)                                              \
  [&] {                                                                                 \
    if ((dtype) == at::kBFloat16) {                                                     \
      using T = c10::BFloat16;                                                          \
      return __VA_ARGS__();                                                             \
    }                                                                                   \
    using T = float;                                                                    \
    return __VA_ARGS__();                                                               \
  }()

at::Tensor gelu_forward(const at::Tensor& zc) {
  auto y = at::empty_like(zc);
  BRAID_FLOAT_OR_BF16(zc.scalar_type(), T, [&] {
    const T* pz = zc.data_ptr<T>();
    T* py = y.data_ptr<T>();
    for_range(zc.numel(), [&](int64_t i0, int64_t i1) { gelu_range(pz, py, i0, i1); });
  });
  return y;
}

struct GeluFn : public torch::autograd::Function<GeluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z) {
    auto zc = z.contiguous();
    ctx->save_for_backward({zc});
    return gelu_forward(zc);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto z = ctx->get_saved_variables()[0];
    if (!grads[0].defined()) return {at::Tensor()};
    auto g = grads[0].to(z.scalar_type()).contiguous();
    auto gz = at::empty_like(z);
    BRAID_FLOAT_OR_BF16(z.scalar_type(), T, [&] {
      const T *pg = g.data_ptr<T>(), *pz = z.data_ptr<T>();
      T* pgz = gz.data_ptr<T>();
      for_range(z.numel(), [&](int64_t i0, int64_t i1) { gelu_grad_range(pg, pz, pgz, i0, i1); });
    });
    return {gz};
  }
};

// h = x + dropout(o) with the keep bits in `mask` (undefined when p == 0).
at::Tensor dropout_add_forward(const at::Tensor& xc, const at::Tensor& oc, double p, at::Tensor& mask) {
  const int64_t n = xc.numel();
  auto h = at::empty_like(xc);
  uint32_t s0 = 0, s1 = 0, thr = 0;
  if (p > 0) {
    auto gen = at::detail::getDefaultCPUGenerator();
    uint64_t seed;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      seed = gen.get<at::CPUGeneratorImpl>()->random64();
    }
    s0 = static_cast<uint32_t>(seed);
    s1 = static_cast<uint32_t>(seed >> 32);
    thr = static_cast<uint32_t>(std::lround(p * 16777216.0));
    mask = at::empty({(n + 15) / 16}, xc.options().dtype(at::kShort));
  }
  const float scale = p > 0 ? static_cast<float>(1.0 / (1.0 - p)) : 1.0f;
  int16_t* pm = mask.defined() ? mask.data_ptr<int16_t>() : nullptr;
  BRAID_FLOAT_OR_BF16(oc.scalar_type(), T, [&] {
    const float* px = xc.data_ptr<float>();
    const T* po = oc.data_ptr<T>();
    float* ph = h.data_ptr<float>();
    for_range(n, [&](int64_t i0, int64_t i1) { dropout_add_range(px, po, ph, pm, s0, s1, thr, scale, i0, i1); });
  });
  return h;
}

struct DropoutAddFn : public torch::autograd::Function<DropoutAddFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& o, double p) {
    at::Tensor mask;
    auto h = dropout_add_forward(x.contiguous(), o.contiguous(), p, mask);
    if (mask.defined()) ctx->saved_data["mask"] = mask;
    ctx->saved_data["scale"] = p > 0 ? 1.0 / (1.0 - p) : 1.0;
    ctx->saved_data["dtype"] = static_cast<int64_t>(o.scalar_type());
    return h;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto it = ctx->saved_data.find("mask");  // none when p == 0
    const at::Tensor mask = it == ctx->saved_data.end() ? at::Tensor() : it->second.toTensor();
    const auto dt = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const auto scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto g = grads[0].contiguous();
    auto go = at::empty_like(g, g.options().dtype(dt));
    const int16_t* pm = mask.defined() ? mask.data_ptr<int16_t>() : nullptr;
    BRAID_FLOAT_OR_BF16(dt, T, [&] {
      const float* pg = g.data_ptr<float>();
      T* pgo = go.data_ptr<T>();
      for_range(g.numel(), [&](int64_t i0, int64_t i1) { dropout_grad_range(pg, pm, scale, pgo, i0, i1); });
    });
    return {grads[0], go, at::Tensor()};
  }
};

// ---- training attention: softmax(q kᵀ / √d, key padding) v per (batch row, head), straight from the fused qkv ----

// C[M, N] = A[M, K] · B[K, N] (row-major, leading dims lda / ldb / ldc; N a multiple of 16 on the AVX-512 path).
#ifdef BRAID_FUSED_TRAIN_X86
__attribute__((target("avx512f"))) void small_gemm_avx512(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                          float* c, int64_t ldc, int64_t M, int64_t N, int64_t K) {
  for (int64_t i = 0; i < M; ++i) {
    int64_t n0 = 0;
    for (; n0 + 64 <= N; n0 += 64) {
      __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
      for (int64_t k = 0; k < K; ++k) {
        const __m512 av = _mm512_set1_ps(a[i * lda + k]);
        const float* br = b + k * ldb + n0;
        c0 = _mm512_fmadd_ps(av, _mm512_loadu_ps(br), c0);
        c1 = _mm512_fmadd_ps(av, _mm512_loadu_ps(br + 16), c1);
        c2 = _mm512_fmadd_ps(av, _mm512_loadu_ps(br + 32), c2);
        c3 = _mm512_fmadd_ps(av, _mm512_loadu_ps(br + 48), c3);
      }
      _mm512_storeu_ps(c + i * ldc + n0, c0);
      _mm512_storeu_ps(c + i * ldc + n0 + 16, c1);
      _mm512_storeu_ps(c + i * ldc + n0 + 32, c2);
      _mm512_storeu_ps(c + i * ldc + n0 + 48, c3);
    }
    for (; n0 < N; n0 += 16) {
      __m512 c0 = _mm512_setzero_ps(), c1 = c0;
      int64_t k = 0;
      for (; k + 2 <= K; k += 2) {  // two chains
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), _mm512_loadu_ps(b + k * ldb + n0), c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k + 1]), _mm512_loadu_ps(b + (k + 1) * ldb + n0), c1);
      }
      if (k < K) c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), _mm512_loadu_ps(b + k * ldb + n0), c0);
      _mm512_storeu_ps(c + i * ldc + n0, _mm512_add_ps(c0, c1));
    }
  }
}
// softmax of each row of s[M, ld] over its first n lanes (the rest, and rows whose every score is -inf, give 0)
__attribute__((target("avx512f"))) void softmax_rows_avx512(float* s, int64_t ld, int64_t M, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < M; ++i) {
    float* r = s + i * ld;
    __m512 mx = ninf;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
      mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(ninf, m, r + j));
    }
    const float top = _mm512_reduce_max_ps(mx);
    if (top == -std::numeric_limits<float>::infinity()) {
      for (int64_t j = 0; j < ld; j += 16) _mm512_storeu_ps(r + j, _mm512_setzero_ps());
      continue;
    }
    const __m512 t = _mm512_set1_ps(top);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < ld; j += 16) {
      const __mmask16 m = j >= n ? __mmask16(0) : n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
      const __m512 e = _mm512_maskz_mov_ps(m, exp512_nonpos(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, r + j), t)));
      sum = _mm512_add_ps(sum, e);
      _mm512_storeu_ps(r + j, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t j = 0; j < ld; j += 16) _mm512_storeu_ps(r + j, _mm512_mul_ps(_mm512_loadu_ps(r + j), inv));
  }
}
#endif
void small_gemm(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t M, int64_t N,
                int64_t K) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return small_gemm_avx512(a, lda, b, ldb, c, ldc, M, N, K);
#endif
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t n = 0; n < N; ++n) c[i * ldc + n] = 0;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) c[i * ldc + n] += a[i * lda + k] * b[k * ldb + n];
  }
}
void softmax_rows(float* s, int64_t ld, int64_t M, int64_t n) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return softmax_rows_avx512(s, ld, M, n);
#endif
  for (int64_t i = 0; i < M; ++i) {
    float* r = s + i * ld;
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) top = std::max(top, r[j]);
    if (top == -std::numeric_limits<float>::infinity()) {
      std::fill(r, r + ld, 0.0f);
      continue;
    }
    float sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += (r[j] = std::exp(r[j] - top));
    for (int64_t j = 0; j < n; ++j) r[j] /= sum;
    std::fill(r + n, r + ld, 0.0f);
  }
}

// Per (b, h) work buffers, float, padded: T rows, Tp = T rounded up to 16 (keys), dp = d rounded up to 16.
struct AttnShape {
  int64_t B, T, H, d, Tp, dp;
  float scale;
};
AttnShape attn_shape(const at::Tensor& qkv, int64_t heads) {
  const int64_t B = qkv.size(0), T = qkv.size(1), d = qkv.size(2) / (3 * heads);
  return {B, T, heads, d, (T + 15) / 16 * 16, (d + 15) / 16 * 16, static_cast<float>(1.0 / std::sqrt(double(d)))};
}

// n elements between float and T (16 at a time on the AVX-512 path)
#ifdef BRAID_FUSED_TRAIN_X86
template <typename S, typename D>
__attribute__((target("avx512f"))) void copy_row_avx512(const S* src, D* dst, int64_t n) {
  for (int64_t c = 0; c < n; c += 16) store16(dst + c, load16(src + c, n - c), n - c);
}
#endif
template <typename S, typename D>
void copy_row(const S* src, D* dst, int64_t n) {
#ifdef BRAID_FUSED_TRAIN_X86
  if (train_avx512()) return copy_row_avx512(src, dst, n);
#endif
  for (int64_t c = 0; c < n; ++c) dst[c] = from_f<D>(to_f(src[c]));
}

// rows t of qkv[b, t, which, h, :] into dst[t · ld + c] as floats (c < d; the pad lanes stay as they are)
template <typename T>
void gather_rows(const T* qkv, const AttnShape& a, int64_t b, int64_t h, int which, float* dst, int64_t ld) {
  for (int64_t t = 0; t < a.T; ++t) copy_row(qkv + ((b * a.T + t) * 3 + which) * a.H * a.d + h * a.d, dst + t * ld, a.d);
}
// m[r, c] (rows, cols, ld) -> mt[c, r] (ldt)
void transpose_to(const float* m, int64_t rows, int64_t cols, int64_t ld, float* mt, int64_t ldt) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) mt[c * ldt + r] = m[r * ld + c];
}

// forward: out [B, T, H·d] (qkv's dtype), p [B, H, T, Tp] float (the probabilities, for the backward)
template <typename T>
void attention_forward_impl(const at::Tensor& qkv, const bool* pad, const AttnShape& a, at::Tensor& out, at::Tensor& p) {
  const T* pq = qkv.data_ptr<T>();
  T* po = out.data_ptr<T>();
  float* pp = p.data_ptr<float>();
  at::parallel_for(0, a.B * a.H, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> q(a.T * a.dp, 0.f), kt(a.dp * a.Tp, 0.f), v(a.Tp * a.dp, 0.f), k(a.Tp * a.dp, 0.f), o(a.T * a.dp);
    for (int64_t bh = i0; bh < i1; ++bh) {
      const int64_t b = bh / a.H, h = bh % a.H;
      gather_rows(pq, a, b, h, 0, q.data(), a.dp);
      gather_rows(pq, a, b, h, 1, k.data(), a.dp);
      gather_rows(pq, a, b, h, 2, v.data(), a.dp);
      for (int64_t t = 0; t < a.T * a.dp; ++t) q[t] *= a.scale;
      transpose_to(k.data(), a.T, a.d, a.dp, kt.data(), a.Tp);
      float* s = pp + bh * a.T * a.Tp;
      small_gemm(q.data(), a.dp, kt.data(), a.Tp, s, a.Tp, a.T, a.Tp, a.d);  // scores [T, Tp]
      for (int64_t j = 0; j < a.T; ++j)
        if (pad && pad[b * a.T + j])
          for (int64_t i = 0; i < a.T; ++i) s[i * a.Tp + j] = -std::numeric_limits<float>::infinity();
      softmax_rows(s, a.Tp, a.T, a.T);
      small_gemm(s, a.Tp, v.data(), a.dp, o.data(), a.dp, a.T, a.dp, a.T);  // [T, dp]
      for (int64_t t = 0; t < a.T; ++t) copy_row(o.data() + t * a.dp, po + (b * a.T + t) * a.H * a.d + h * a.d, a.d);
    }
  });
}

template <typename T>
void attention_backward_impl(const at::Tensor& qkv, const at::Tensor& p, const at::Tensor& go, const AttnShape& a,
                             at::Tensor& gqkv) {
  const T* pq = qkv.data_ptr<T>();
  const T* pg = go.data_ptr<T>();
  const float* pp = p.data_ptr<float>();
  T* pd = gqkv.data_ptr<T>();
  at::parallel_for(0, a.B * a.H, 1, [&](int64_t i0, int64_t i1) {
    const int64_t TT = a.Tp * a.dp;
    std::vector<float> q(TT, 0.f), k(TT, 0.f), v(TT, 0.f), g(TT, 0.f), vt(a.dp * a.Tp, 0.f), dp(a.T * a.Tp, 0.f);
    std::vector<float> pt(a.Tp * a.Tp, 0.f), dst(a.Tp * a.Tp, 0.f), dq(TT), dk(TT), dv(TT);
    for (int64_t bh = i0; bh < i1; ++bh) {
      const int64_t b = bh / a.H, h = bh % a.H;
      const float* P = pp + bh * a.T * a.Tp;
      gather_rows(pq, a, b, h, 0, q.data(), a.dp);
      gather_rows(pq, a, b, h, 1, k.data(), a.dp);
      gather_rows(pq, a, b, h, 2, v.data(), a.dp);
      for (int64_t t = 0; t < a.T; ++t) copy_row(pg + (b * a.T + t) * a.H * a.d + h * a.d, g.data() + t * a.dp, a.d);
      transpose_to(v.data(), a.T, a.d, a.dp, vt.data(), a.Tp);
      small_gemm(g.data(), a.dp, vt.data(), a.Tp, dp.data(), a.Tp, a.T, a.Tp, a.d);  // dP = dO Vᵀ [T, Tp]
      for (int64_t i = 0; i < a.T; ++i) {  // dS = P ∘ (dP - rowsum(P ∘ dP)) · scale, in place in dp
        float dot = 0;
        for (int64_t j = 0; j < a.T; ++j) dot += P[i * a.Tp + j] * dp[i * a.Tp + j];
        for (int64_t j = 0; j < a.Tp; ++j)
          dp[i * a.Tp + j] = j < a.T ? P[i * a.Tp + j] * (dp[i * a.Tp + j] - dot) * a.scale : 0.0f;
      }
      small_gemm(dp.data(), a.Tp, k.data(), a.dp, dq.data(), a.dp, a.T, a.dp, a.T);  // dQ = dS K
      transpose_to(dp.data(), a.T, a.T, a.Tp, dst.data(), a.Tp);
      small_gemm(dst.data(), a.Tp, q.data(), a.dp, dk.data(), a.dp, a.T, a.dp, a.T);  // dK = dSᵀ Q
      transpose_to(P, a.T, a.T, a.Tp, pt.data(), a.Tp);
      small_gemm(pt.data(), a.Tp, g.data(), a.dp, dv.data(), a.dp, a.T, a.dp, a.T);  // dV = Pᵀ dO
      const float* parts[3] = {dq.data(), dk.data(), dv.data()};
      for (int which = 0; which < 3; ++which)
        for (int64_t t = 0; t < a.T; ++t)
          copy_row(parts[which] + t * a.dp, pd + ((b * a.T + t) * 3 + which) * a.H * a.d + h * a.d, a.d);
    }
  });
}

// out [B, T, H·d] and the probabilities p [B, H, T, Tp] of contiguous qkv
at::Tensor attention_forward(const at::Tensor& qc, int64_t heads, const at::Tensor& pad, at::Tensor& p) {
  const auto a = attn_shape(qc, heads);
  auto padc = pad.defined() && pad.numel() > 0 ? pad.contiguous() : at::Tensor();  // empty: no padding
  auto out = at::empty({a.B, a.T, a.H * a.d}, qc.options());
  p = at::empty({a.B, a.H, a.T, a.Tp}, qc.options().dtype(at::kFloat));
  BRAID_FLOAT_OR_BF16(qc.scalar_type(), T, [&] {
    attention_forward_impl<T>(qc, padc.defined() ? padc.data_ptr<bool>() : nullptr, a, out, p);
  });
  return out;
}

struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& qkv, int64_t heads, const at::Tensor& pad) {
    auto qc = qkv.contiguous();
    at::Tensor p;
    auto out = attention_forward(qc, heads, pad, p);
    ctx->save_for_backward({qc, p});
    ctx->saved_data["heads"] = heads;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &qkv = saved[0], &p = saved[1];
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto a = attn_shape(qkv, ctx->saved_data["heads"].toInt());
    auto go = grads[0].to(qkv.scalar_type()).contiguous();
    auto gqkv = at::empty_like(qkv);
    BRAID_FLOAT_OR_BF16(qkv.scalar_type(), T, [&] { attention_backward_impl<T>(qkv, p, go, a, gqkv); });
    return {gqkv, at::Tensor(), at::Tensor()};
  }
};

void check_float_or_bf16(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, op, ": ", name,
              " must be float or bfloat16, got ", t.scalar_type());
}

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

at::Tensor gelu(const at::Tensor& z) {
  check_float_or_bf16("gelu", z, "the input");
  if (!(at::GradMode::is_enabled() && z.requires_grad())) return gelu_forward(z.contiguous());
  return GeluFn::apply(z);
}

at::Tensor dropout_add(const at::Tensor& x, const at::Tensor& o, double p) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat, "dropout_add: x must be a float CPU tensor, got ",
              x.scalar_type(), " on ", x.device());
  check_float_or_bf16("dropout_add", o, "o");
  TORCH_CHECK(x.sizes() == o.sizes(), "dropout_add: x ", x.sizes(), " and o ", o.sizes(), " differ in shape");
  TORCH_CHECK(p >= 0 && p < 1, "dropout_add: p must be in [0, 1), got ", p);
  TORCH_CHECK(x.numel() < (int64_t(1) << 32), "dropout_add: at most 2^32 elements, got ", x.numel());
  if (!(at::GradMode::is_enabled() && (x.requires_grad() || o.requires_grad()))) {
    at::Tensor mask;
    return dropout_add_forward(x.contiguous(), o.contiguous(), p, mask);
  }
  return DropoutAddFn::apply(x, o, p);
}

at::Tensor attention_qkv(const at::Tensor& qkv, int64_t heads, const at::Tensor& pad) {
  check_float_or_bf16("attention_qkv", qkv, "qkv");
  TORCH_CHECK(heads > 0 && qkv.dim() == 3 && qkv.size(2) % (3 * heads) == 0, "attention_qkv: qkv must be [B, T, 3·H·d] ",
              "with H = ", heads, ", got ", qkv.sizes());
  TORCH_CHECK(!pad.defined() || (pad.scalar_type() == at::kBool && pad.dim() == 2 && pad.size(0) == qkv.size(0) &&
                                 pad.size(1) == qkv.size(1) && pad.device().is_cpu()),
              "attention_qkv: pad must be a [B, T] bool CPU tensor matching qkv ", qkv.sizes());
  if (!(at::GradMode::is_enabled() && qkv.requires_grad())) {
    at::Tensor p;
    return attention_forward(qkv.contiguous(), heads, pad, p);
  }
  // (an undefined tensor cannot be an argument of a custom Function's apply: "no padding" goes as an empty one)
  return AttentionFn::apply(qkv, heads, pad.defined() ? pad : at::empty({0}, qkv.options().dtype(at::kBool)));
}

void set_fused_train(bool on) { g_train.store(on); }
bool fused_train_enabled() { return g_train.load(); }
bool fused_train_applies(const at::Tensor& x) {
  return g_train.load() && x.device().is_cpu() && x.scalar_type() == at::kFloat && train_avx512();
}
void set_fused_train_scalar(bool scalar) { g_train_scalar.store(scalar); }

void set_fused_kernels(bool on) { g_fused.store(on); }
bool fused_kernels() { return g_fused.load(); }

}  // namespace braid::nn
