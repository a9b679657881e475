#include "braid/nn/fused_infer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/modules/normalization.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "braid/core/cpu_features.h"
#include "braid/nn/prepack.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "braid/nn/gelu_avx512.h"
#define BRAID_FUSED_X86 1
#endif

namespace braid::nn {

namespace {

std::atomic<bool> g_on{true};
std::atomic<int> g_isa{static_cast<int>(Isa::Auto)};

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

enum class Path { Scalar, Avx2, Avx512 };

// The path the next call takes: Auto = AVX-512 where the CPU has it, else AVX2 (with FMA), else scalar.
Path active_path() {
#ifdef BRAID_FUSED_X86
  static const bool avx512 = detected_cpu_features().avx512f;
  static const bool avx2 = detected_cpu_features().avx2 && detected_cpu_features().fma;
  switch (static_cast<Isa>(g_isa.load(std::memory_order_relaxed))) {
    case Isa::Scalar: return Path::Scalar;
    case Isa::Avx2: return avx2 ? Path::Avx2 : Path::Scalar;
    case Isa::Auto: return avx512 ? Path::Avx512 : avx2 ? Path::Avx2 : Path::Scalar;
  }
#endif
  return Path::Scalar;
}
bool use_avx512() { return active_path() == Path::Avx512; }

// In place: y = 0.5·y·(1 + erf(y/√2)) (torch::gelu's erf form).
void gelu_scalar(float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * y[i] * (1.0f + std::erf(y[i] * 0.70710678118654752f));
}

// One (batch row, head) of attention. q, k, v: token t's d values at q + t·row (k, v likewise); valid(j): key j
// is not padding; o: query i's output at o + i·orow. s: scratch of T floats.
template <typename Valid>
void attend_scalar(const float* q, const float* k, const float* v, int64_t row, int64_t T, int64_t d, float scale,
                   const Valid& valid, float* o, int64_t orow, float* s) {
  for (int64_t i = 0; i < T; ++i) {
    const float* qi = q + i * row;
    float mx = kNegInf;
    for (int64_t j = 0; j < T; ++j) {
      if (!valid(j)) {
        s[j] = kNegInf;
        continue;
      }
      const float* kj = k + j * row;
      float acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += qi[c] * kj[c];
      s[j] = acc * scale;
      mx = std::max(mx, s[j]);
    }
    float* oi = o + i * orow;
    std::fill(oi, oi + d, 0.0f);
    if (mx == kNegInf) continue;  // every key is padding: zeros, as the unfused path's nan_to_num
    float sum = 0;
    for (int64_t j = 0; j < T; ++j) {
      s[j] = valid(j) ? std::exp(s[j] - mx) : 0.0f;
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < T; ++j) {
      const float p = s[j] * inv;
      if (p == 0) continue;
      const float* vj = v + j * row;
      for (int64_t c = 0; c < d; ++c) oi[c] += p * vj[c];
    }
  }
}

void layer_norm_scalar(const float* x, const float* w, const float* b, int64_t D, float eps, float* y) {
  double sum = 0;
  for (int64_t c = 0; c < D; ++c) sum += x[c];
  const double mean = sum / D;
  double var = 0;
  for (int64_t c = 0; c < D; ++c) var += (x[c] - mean) * (x[c] - mean);
  const float m = static_cast<float>(mean), rstd = static_cast<float>(1.0 / std::sqrt(var / D + eps));
  for (int64_t c = 0; c < D; ++c) y[c] = (x[c] - m) * rstd * w[c] + b[c];
}

#ifdef BRAID_FUSED_X86

// 16 rows of 16 floats (r[i] = row i) transposed in registers: r[c] = column c.
__attribute__((target("avx512f"))) inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int k = 0; k < 8; ++k) {  // t[2k] lane L: a[4L], b[4L], a[4L+1], b[4L+1] of rows a = 2k, b = 2k+1
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // r[4k+m] lane L: column 4L+m of rows 4k..4k+3
    const __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * k + 1]), e = _mm512_castps_pd(t[4 * k + 3]);
    r[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
    r[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
  }
  for (int m = 0; m < 4; ++m) {  // 128-bit lanes: columns m, m+8 (0x88) and m+4, m+12 (0xdd) of rows 0-7 / 8-15
    t[m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);
    t[4 + m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xdd);
    t[8 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
    t[12 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xdd);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0x88);
    r[m + 8] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0xdd);
    r[m + 4] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0x88);
    r[m + 12] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0xdd);
  }
}

// Scores of R queries (q + r·row) against the keys of the first nblocks blocks: s[r·Tp + j] = (q_r · k_j)·scale, -inf for padding keys and
// j >= T. kt is kᵀ (d rows of Tp floats); valid[bk] the non-padding keys of block bk. R independent FMA chains
// per key block keep the FMA units busy (one chain would wait on each FMA's latency).
template <int R>
__attribute__((target("avx512f"))) inline void scores_avx512(const float* q, int64_t row, int64_t d, const float* kt,
                                                             int64_t Tp, int64_t nblocks, const __mmask16* valid,
                                                             float scale, float* s) {
  const __m512 vscale = _mm512_set1_ps(scale), neg_inf = _mm512_set1_ps(kNegInf);
  for (int64_t bk = 0; bk < nblocks; ++bk) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const float* kc = kt + bk * 16;
    for (int64_t c = 0; c < d; ++c) {
      const __m512 kv = _mm512_loadu_ps(kc + c * Tp);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r * row + c]), kv, acc[r]);
    }
    for (int r = 0; r < R; ++r)
      _mm512_storeu_ps(s + r * Tp + bk * 16, _mm512_mask_mov_ps(neg_inf, valid[bk], _mm512_mul_ps(acc[r], vscale)));
  }
}

// o_r[c0, c0 + 16C) = sum_j p[r·Tp + j] v_j[c0, c0 + 16C) for R rows: R·C accumulators.
template <int R, int C>
__attribute__((target("avx512f"))) inline void pv_avx512(const float* p, int64_t Tp, const float* v, int64_t row,
                                                         int64_t T, int64_t c0, float* o, int64_t orow) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int cc = 0; cc < C; ++cc) acc[r][cc] = _mm512_setzero_ps();
  for (int64_t j = 0; j < T; ++j) {
    __m512 vv[C];
    for (int cc = 0; cc < C; ++cc) vv[cc] = _mm512_loadu_ps(v + j * row + c0 + 16 * cc);
    for (int r = 0; r < R; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r * Tp + j]);
      for (int cc = 0; cc < C; ++cc) acc[r][cc] = _mm512_fmadd_ps(pr, vv[cc], acc[r][cc]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int cc = 0; cc < C; ++cc) _mm512_storeu_ps(o + r * orow + c0 + 16 * cc, acc[r][cc]);
}

template <int R>
__attribute__((target("avx512f"))) inline void pv_rows_avx512(const float* p, int64_t Tp, const float* v, int64_t row,
                                                              int64_t T, int64_t d, float* o, int64_t orow) {
  int64_t c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) pv_avx512<R, 4>(p, Tp, v, row, T, c0, o, orow);
  for (; c0 < d; c0 += 16) pv_avx512<R, 1>(p, Tp, v, row, T, c0, o, orow);
}

// attend_scalar with 16 keys per vector: kt (d·Tp floats, Tp = 16·blocks; lanes j >= T zero) is kᵀ, s (T·Tp floats)
// the probabilities, valid[bk] the bits of the non-padding keys of each block of 16. d % 16 == 0. A last block of at
// most kDotTail keys after full blocks is scored by dot products (mostly empty lanes otherwise).
constexpr int64_t kDotTail = 4;
__attribute__((target("avx512f"))) void attend_avx512(const float* q, const float* k, const float* v, int64_t row,
                                                      int64_t T, int64_t d, float scale, const __mmask16* valid,
                                                      float* o, int64_t orow, float* kt, float* s) {
  const int64_t blocks = (T + 15) / 16, Tp = blocks * 16, full = T / 16, tail = T - 16 * full;
  const bool dot_tail = tail > 0 && tail <= kDotTail && full > 0;
  for (int64_t bk = 0; bk < full; ++bk)  // kᵀ of the full key blocks, 16 x 16 at a time
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      __m512 r[16];
      for (int jj = 0; jj < 16; ++jj) r[jj] = _mm512_loadu_ps(k + (bk * 16 + jj) * row + c0);
      transpose16x16(r);
      for (int cc = 0; cc < 16; ++cc) _mm512_storeu_ps(kt + (c0 + cc) * Tp + bk * 16, r[cc]);
    }
  if (tail > 0 && !dot_tail)
    for (int64_t j = 16 * full; j < T; ++j)
      for (int64_t c = 0; c < d; ++c) kt[c * Tp + j] = k[j * row + c];
  const int64_t nblocks = dot_tail ? full : blocks;
  int64_t i = 0;
  for (; i + 8 <= T; i += 8) scores_avx512<8>(q + i * row, row, d, kt, Tp, nblocks, valid, scale, s + i * Tp);
  for (; i + 4 <= T; i += 4) scores_avx512<4>(q + i * row, row, d, kt, Tp, nblocks, valid, scale, s + i * Tp);
  for (; i < T; ++i) scores_avx512<1>(q + i * row, row, d, kt, Tp, nblocks, valid, scale, s + i * Tp);
  if (dot_tail) {
    const __mmask16 vt = valid[full];
    for (i = 0; i < T; ++i) {
      float* st = s + i * Tp + 16 * full;
      for (int64_t jj = 0; jj < 16; ++jj) {
        if (jj >= tail || !((vt >> jj) & 1)) {
          st[jj] = kNegInf;
          continue;
        }
        const float* kj = k + (16 * full + jj) * row;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < d; c += 16)
          acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i * row + c), _mm512_loadu_ps(kj + c), acc);
        st[jj] = _mm512_reduce_add_ps(acc) * scale;
      }
    }
  }
  // softmax of each row in place (normalised, as the unfused softmax before its matmul)
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  for (i = 0; i < T; ++i) {
    float* si = s + i * Tp;
    __m512 mx = neg_inf;
    for (int64_t bk = 0; bk < blocks; ++bk) mx = _mm512_max_ps(mx, _mm512_loadu_ps(si + bk * 16));
    const float m = _mm512_reduce_max_ps(mx);
    if (m == kNegInf) {  // every key is padding: zero weights, zero output
      for (int64_t bk = 0; bk < blocks; ++bk) _mm512_storeu_ps(si + bk * 16, _mm512_setzero_ps());
      continue;
    }
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t bk = 0; bk < blocks; ++bk) {
      const __m512 e = _mm512_maskz_mov_ps(valid[bk], exp512_nonpos(_mm512_sub_ps(_mm512_loadu_ps(si + bk * 16), vm)));
      _mm512_storeu_ps(si + bk * 16, e);
      sum = _mm512_add_ps(sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t bk = 0; bk < blocks; ++bk) _mm512_storeu_ps(si + bk * 16, _mm512_mul_ps(_mm512_loadu_ps(si + bk * 16), inv));
  }
  for (i = 0; i + 4 <= T; i += 4) pv_rows_avx512<4>(s + i * Tp, Tp, v, row, T, d, o + i * orow, orow);
  for (; i < T; ++i) pv_rows_avx512<1>(s + i * Tp, Tp, v, row, T, d, o + i * orow, orow);
}

__attribute__((target("avx512f"))) void layer_norm_avx512(const float* x, const float* w, const float* b, int64_t D,
                                                          float eps, float* y) {
  const int64_t full = D / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (D - full)) - 1);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < full; c += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + c));
  if (tail) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail, x + full));
  const float mean = _mm512_reduce_add_ps(acc) / static_cast<float>(D);
  const __m512 vm = _mm512_set1_ps(mean);
  acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < full; c += 16) {
    const __m512 t = _mm512_sub_ps(_mm512_loadu_ps(x + c), vm);
    acc = _mm512_fmadd_ps(t, t, acc);
  }
  if (tail) {
    const __m512 t = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + full), vm);
    acc = _mm512_fmadd_ps(t, t, acc);
  }
  const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(acc) / static_cast<float>(D) + eps));
  for (int64_t c = 0; c < full; c += 16) {
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), vm), rstd);
    _mm512_storeu_ps(y + c, _mm512_fmadd_ps(t, _mm512_loadu_ps(w + c), _mm512_loadu_ps(b + c)));
  }
  if (tail) {
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), vm), rstd);
    _mm512_mask_storeu_ps(y + full, tail,
                          _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(tail, w + full), _mm512_maskz_loadu_ps(tail, b + full)));
  }
}

// ---- AVX2 + FMA: the same kernels 8 floats at a time (CPUs without AVX-512) ----------------------------------

// erf512's rational approximation, 8 lanes (same coefficients and clamp).
__attribute__((target("avx2,fma"))) inline __m256 erf256(__m256 z) {
  z = _mm256_max_ps(_mm256_min_ps(z, _mm256_set1_ps(4.0f)), _mm256_set1_ps(-4.0f));
  const __m256 z2 = _mm256_mul_ps(z, z);
  __m256 p = _mm256_set1_ps(kErfP[0]);
  for (int i = 1; i < 7; ++i) p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(kErfP[i]));
  __m256 q = _mm256_set1_ps(kErfQ[0]);
  for (int i = 1; i < 5; ++i) q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(kErfQ[i]));
  return _mm256_div_ps(_mm256_mul_ps(z, p), q);
}

// exp512_nonpos, 8 lanes: 2^n built in the exponent bits (n >= -126 after the clamp: a normal float).
__attribute__((target("avx2,fma"))) inline __m256 exp256_nonpos(__m256 x) {
  const __m256 normal = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_NLT_UQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpMin));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), x);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(kExpP[i]));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(normal, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}
__attribute__((target("avx2,fma"))) inline float hmax256(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)));
}

// All-ones lanes where bit i of `bits` is set (lane i), zero elsewhere.
__attribute__((target("avx2,fma"))) inline __m256 lanes_of(unsigned bits) {
  const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), sel), sel));
}
// The first n lanes (0 <= n <= 8) as a maskload / maskstore mask.
__attribute__((target("avx2,fma"))) inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma"))) void gelu_avx2(float* y, int64_t n) {
  const __m256 c = _mm256_set1_ps(0.70710678118654752f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = first_lanes(std::min<int64_t>(8, n - i));
    const __m256 x = _mm256_maskload_ps(y + i, m);
    const __m256 e = erf256(_mm256_mul_ps(x, c));
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e)));
  }
}

// 8 rows of 8 floats transposed in registers.
__attribute__((target("avx2,fma"))) inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {
    u[4 * k] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

// scores_avx512 with 8 keys per block.
template <int R>
__attribute__((target("avx2,fma"))) inline void scores_avx2(const float* q, int64_t row, int64_t d, const float* kt,
                                                          int64_t Tp, int64_t nblocks, const uint16_t* valid,
                                                          float scale, float* s) {
  const __m256 vscale = _mm256_set1_ps(scale), neg_inf = _mm256_set1_ps(kNegInf);
  for (int64_t bk = 0; bk < nblocks; ++bk) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const float* kc = kt + bk * 8;
    for (int64_t c = 0; c < d; ++c) {
      const __m256 kv = _mm256_loadu_ps(kc + c * Tp);
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(q[r * row + c]), kv, acc[r]);
    }
    const __m256 ok = lanes_of(valid[bk]);
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(s + r * Tp + bk * 8, _mm256_blendv_ps(neg_inf, _mm256_mul_ps(acc[r], vscale), ok));
  }
}

// pv_avx512 with 8-float column chunks: o_r[c0, c0 + 8C) for R rows.
template <int R, int C>
__attribute__((target("avx2,fma"))) inline void pv_avx2(const float* p, int64_t Tp, const float* v, int64_t row,
                                                      int64_t T, int64_t c0, float* o, int64_t orow) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int cc = 0; cc < C; ++cc) acc[r][cc] = _mm256_setzero_ps();
  for (int64_t j = 0; j < T; ++j) {
    __m256 vv[C];
    for (int cc = 0; cc < C; ++cc) vv[cc] = _mm256_loadu_ps(v + j * row + c0 + 8 * cc);
    for (int r = 0; r < R; ++r) {
      const __m256 pr = _mm256_set1_ps(p[r * Tp + j]);
      for (int cc = 0; cc < C; ++cc) acc[r][cc] = _mm256_fmadd_ps(pr, vv[cc], acc[r][cc]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int cc = 0; cc < C; ++cc) _mm256_storeu_ps(o + r * orow + c0 + 8 * cc, acc[r][cc]);
}

template <int R>
__attribute__((target("avx2,fma"))) inline void pv_rows_avx2(const float* p, int64_t Tp, const float* v, int64_t row,
                                                           int64_t T, int64_t d, float* o, int64_t orow) {
  int64_t c0 = 0;
  for (; c0 + 16 <= d; c0 += 16) pv_avx2<R, 2>(p, Tp, v, row, T, c0, o, orow);
  for (; c0 < d; c0 += 8) pv_avx2<R, 1>(p, Tp, v, row, T, c0, o, orow);
}

// attend_avx512 with 8 keys per block: kt (d·Tp floats, Tp = 8·blocks) is kᵀ, valid[bk] the bits of block bk's
// non-padding keys. d % 8 == 0. A last block of at most kDotTail keys after full blocks is scored by dot products.
__attribute__((target("avx2,fma"))) void attend_avx2(const float* q, const float* k, const float* v, int64_t row,
                                                   int64_t T, int64_t d, float scale, const uint16_t* valid, float* o,
                                                   int64_t orow, float* kt, float* s) {
  const int64_t blocks = (T + 7) / 8, Tp = blocks * 8, full = T / 8, tail = T - 8 * full;
  const bool dot_tail = tail > 0 && tail <= kDotTail && full > 0;
  for (int64_t bk = 0; bk < full; ++bk)
    for (int64_t c0 = 0; c0 < d; c0 += 8) {
      __m256 r[8];
      for (int jj = 0; jj < 8; ++jj) r[jj] = _mm256_loadu_ps(k + (bk * 8 + jj) * row + c0);
      transpose8x8(r);
      for (int cc = 0; cc < 8; ++cc) _mm256_storeu_ps(kt + (c0 + cc) * Tp + bk * 8, r[cc]);
    }
  if (tail > 0 && !dot_tail)
    for (int64_t j = 8 * full; j < T; ++j)
      for (int64_t c = 0; c < d; ++c) kt[c * Tp + j] = k[j * row + c];
  const int64_t nblocks = dot_tail ? full : blocks;
  int64_t i = 0;
  for (; i + 8 <= T; i += 8) scores_avx2<8>(q + i * row, row, d, kt, Tp, nblocks, valid, scale, s + i * Tp);
  for (; i + 4 <= T; i += 4) scores_avx2<4>(q + i * row, row, d, kt, Tp, nblocks, valid, scale, s + i * Tp);
  for (; i < T; ++i) scores_avx2<1>(q + i * row, row, d, kt, Tp, nblocks, valid, scale, s + i * Tp);
  if (dot_tail) {
    const unsigned vt = valid[full];
    for (i = 0; i < T; ++i) {
      float* st = s + i * Tp + 8 * full;
      for (int64_t jj = 0; jj < 8; ++jj) {
        if (jj >= tail || !((vt >> jj) & 1)) {
          st[jj] = kNegInf;
          continue;
        }
        const float* kj = k + (8 * full + jj) * row;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t c = 0; c < d; c += 8)
          acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i * row + c), _mm256_loadu_ps(kj + c), acc);
        st[jj] = hsum256(acc) * scale;
      }
    }
  }
  const __m256 neg_inf = _mm256_set1_ps(kNegInf);
  for (i = 0; i < T; ++i) {
    float* si = s + i * Tp;
    __m256 mx = neg_inf;
    for (int64_t bk = 0; bk < blocks; ++bk) mx = _mm256_max_ps(mx, _mm256_loadu_ps(si + bk * 8));
    const float m = hmax256(mx);
    if (m == kNegInf) {
      for (int64_t bk = 0; bk < blocks; ++bk) _mm256_storeu_ps(si + bk * 8, _mm256_setzero_ps());
      continue;
    }
    const __m256 vm = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t bk = 0; bk < blocks; ++bk) {
      const __m256 e = _mm256_and_ps(lanes_of(valid[bk]), exp256_nonpos(_mm256_sub_ps(_mm256_loadu_ps(si + bk * 8), vm)));
      _mm256_storeu_ps(si + bk * 8, e);
      sum = _mm256_add_ps(sum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum256(sum));
    for (int64_t bk = 0; bk < blocks; ++bk) _mm256_storeu_ps(si + bk * 8, _mm256_mul_ps(_mm256_loadu_ps(si + bk * 8), inv));
  }
  for (i = 0; i + 4 <= T; i += 4) pv_rows_avx2<4>(s + i * Tp, Tp, v, row, T, d, o + i * orow, orow);
  for (; i < T; ++i) pv_rows_avx2<1>(s + i * Tp, Tp, v, row, T, d, o + i * orow, orow);
}

__attribute__((target("avx2,fma"))) void layer_norm_avx2(const float* x, const float* w, const float* b, int64_t D,
                                                       float eps, float* y) {
  const int64_t full = D / 8 * 8;
  const __m256i tail = first_lanes(D - full);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t c = 0; c < full; c += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + c));
  if (D > full) acc = _mm256_add_ps(acc, _mm256_maskload_ps(x + full, tail));
  const float mean = hsum256(acc) / static_cast<float>(D);
  const __m256 vm = _mm256_set1_ps(mean);
  acc = _mm256_setzero_ps();
  for (int64_t c = 0; c < full; c += 8) {
    const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + c), vm);
    acc = _mm256_fmadd_ps(t, t, acc);
  }
  if (D > full) {
    const __m256 t = _mm256_and_ps(_mm256_castsi256_ps(tail), _mm256_sub_ps(_mm256_maskload_ps(x + full, tail), vm));
    acc = _mm256_fmadd_ps(t, t, acc);
  }
  const __m256 rstd = _mm256_set1_ps(1.0f / std::sqrt(hsum256(acc) / static_cast<float>(D) + eps));
  for (int64_t c = 0; c < full; c += 8) {
    const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), rstd);
    _mm256_storeu_ps(y + c, _mm256_fmadd_ps(t, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
  }
  if (D > full) {
    const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + full, tail), vm), rstd);
    _mm256_maskstore_ps(y + full, tail, _mm256_fmadd_ps(t, _mm256_maskload_ps(w + full, tail), _mm256_maskload_ps(b + full, tail)));
  }
}

#endif  // BRAID_FUSED_X86

}  // namespace

at::Tensor infer_attention(const at::Tensor& qkv, int64_t heads, const at::Tensor& pad) {
  TORCH_CHECK(qkv.device().is_cpu() && qkv.scalar_type() == at::kFloat && qkv.dim() == 3,
              "infer_attention: qkv must be a [B, T, 3·H·d] float32 CPU tensor, got ", qkv.scalar_type(), " ",
              qkv.sizes());
  TORCH_CHECK(heads > 0 && qkv.size(2) % (3 * heads) == 0, "infer_attention: qkv's last dim ", qkv.size(2),
              " is not 3 x heads (", heads, ") x head dim");
  const int64_t B = qkv.size(0), T = qkv.size(1), H = heads, d = qkv.size(2) / (3 * heads), row = 3 * H * d;
  at::Tensor pc;
  if (pad.defined()) {
    TORCH_CHECK(pad.scalar_type() == at::kBool && pad.dim() == 2 && pad.size(0) == B && pad.size(1) == T,
                "infer_attention: pad must be a [B, T] bool tensor (", B, ", ", T, "), got ", pad.scalar_type(), " ",
                pad.sizes());
    pc = pad.to(at::kCPU).contiguous();
  }
  auto xc = qkv.contiguous();
  auto out = at::empty({B, T, H * d}, qkv.options());
  if (B == 0 || T == 0 || d == 0) return out.zero_();
  const float* base = xc.data_ptr<float>();
  const bool* pp = pc.defined() ? pc.data_ptr<bool>() : nullptr;
  float* po = out.data_ptr<float>();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const Path path = active_path();
  // the vector path: key blocks of W lanes (16 for AVX-512, 8 for AVX2); the head dim a multiple of W
  const int64_t W = path == Path::Avx512 ? 16 : 8;
  const bool simd = path != Path::Scalar && d % W == 0;
  at::parallel_for(0, B * H, 4, [&](int64_t p0, int64_t p1) {
    const int64_t blocks = (T + W - 1) / W, Tp = blocks * W;
    // kt's lanes j >= T stay zero: each (b, h) writes lanes j < T only
    std::vector<float> s(static_cast<size_t>(simd ? T * Tp : T)), kt(simd ? static_cast<size_t>(d * Tp) : 0);
    std::vector<uint16_t> valid(static_cast<size_t>(blocks));  // bit j: key bk·W + j is not padding
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / H, h = p % H;
      const float* q = base + b * T * row + h * d;
      const bool* pb = pp ? pp + b * T : nullptr;
      float* o = po + b * T * H * d + h * d;
      if (!simd) {
        attend_scalar(q, q + H * d, q + 2 * H * d, row, T, d, scale, [pb](int64_t j) { return !pb || !pb[j]; }, o,
                      H * d, s.data());
        continue;
      }
      for (int64_t bk = 0; bk < blocks; ++bk) {
        unsigned bits = 0;
        for (int64_t j = bk * W; j < std::min(T, bk * W + W); ++j)
          if (!pb || !pb[j]) bits |= 1u << (j - bk * W);
        valid[static_cast<size_t>(bk)] = static_cast<uint16_t>(bits);
      }
#ifdef BRAID_FUSED_X86
      if (path == Path::Avx512)
        attend_avx512(q, q + H * d, q + 2 * H * d, row, T, d, scale, reinterpret_cast<const __mmask16*>(valid.data()), o,
                      H * d, kt.data(), s.data());
      else
        attend_avx2(q, q + H * d, q + 2 * H * d, row, T, d, scale, valid.data(), o, H * d, kt.data(), s.data());
#endif
    }
  });
  return out;
}

at::Tensor infer_layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= 1,
              "infer_layer_norm: x must be a float32 CPU tensor, got ", x.scalar_type(), " on ", x.device());
  const int64_t D = x.size(-1);
  TORCH_CHECK(weight.defined() && bias.defined() && weight.numel() == D && bias.numel() == D &&
                  weight.scalar_type() == at::kFloat && bias.scalar_type() == at::kFloat,
              "infer_layer_norm: weight and bias must be float32 [", D, "] (x ", x.sizes(), ")");
  auto xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
  auto y = at::empty_like(xc);
  const int64_t N = D ? xc.numel() / D : 0;
  if (N == 0 || D == 0) return y;
  const float *px = xc.data_ptr<float>(), *pw = wc.data_ptr<float>(), *pb = bc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  const Path path = active_path();
  (void)path;  // no vector path off x86-64
  const float e = static_cast<float>(eps);
  at::parallel_for(0, N, std::max<int64_t>(1, 16384 / D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
#ifdef BRAID_FUSED_X86
      if (path == Path::Avx512) {
        layer_norm_avx512(px + r * D, pw, pb, D, e, py + r * D);
        continue;
      }
      if (path == Path::Avx2) {
        layer_norm_avx2(px + r * D, pw, pb, D, e, py + r * D);
        continue;
      }
#endif
      layer_norm_scalar(px + r * D, pw, pb, D, e, py + r * D);
    }
  });
  return y;
}

void infer_gelu_(at::Tensor& y) {
  TORCH_CHECK(y.device().is_cpu() && y.scalar_type() == at::kFloat && y.is_contiguous(),
              "infer_gelu_: y must be a contiguous float32 CPU tensor, got ", y.scalar_type(), " on ", y.device());
  float* p = y.data_ptr<float>();
  const Path path = active_path();
  (void)path;  // no vector path off x86-64
  at::parallel_for(0, y.numel(), 1 << 16, [&](int64_t i0, int64_t i1) {
#ifdef BRAID_FUSED_X86
    if (path == Path::Avx512) return gelu_avx512(p + i0, i1 - i0);
    if (path == Path::Avx2) return gelu_avx2(p + i0, i1 - i0);
#endif
    gelu_scalar(p + i0, i1 - i0);
  });
}

void set_fused_infer_isa(Isa isa) { g_isa.store(static_cast<int>(isa)); }
bool fused_infer_uses_avx512() { return use_avx512(); }
bool fused_infer_uses_avx2() { return active_path() == Path::Avx2; }

void set_fused_infer(bool on) { g_on.store(on); }
bool fused_infer_enabled() { return g_on.load(std::memory_order_relaxed); }

bool fused_infer_applies(const at::Tensor& x) {
  return fused_infer_enabled() && any_prepacked() && !at::GradMode::is_enabled() && x.device().is_cpu() &&
         x.scalar_type() == at::kFloat && !at::autocast::is_cpu_enabled() && active_path() != Path::Scalar;
}

at::Tensor layer_norm_inference(torch::nn::LayerNormImpl& ln, const at::Tensor& x) {
  if (fused_infer_applies(x) && ln.weight.scalar_type() == at::kFloat)
    return infer_layer_norm(x, ln.weight, ln.bias, ln.options.eps());
  return ln.forward(x);
}

}  // namespace braid::nn
