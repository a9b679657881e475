// src/braid/nn/gelu_avx512.h — the AVX-512 erf-GELU of nn/fused_infer (infer_gelu_), header-only and free of
// ATen so that bench/dnnl_gelu_mb.cpp times the same code. x86-64 only; the functions need a CPU with avx512f.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace braid::nn {

// The coefficients of erf's float rational approximation, z·P(z²)/Q(z²) (highest power first), and of Cephes'
// expf on x <= 0 (ln 2 split in a high and a low part, polynomial highest power first): shared by the AVX-512
// functions here and the AVX2 ones of nn/fused_infer.cpp.
inline constexpr float kErfP[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                                   -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                                   -1.60960333262415e-02f};
inline constexpr float kErfQ[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                                   -7.37332916720468e-03f, -1.42647390514189e-02f};
inline constexpr float kExpMin = -87.33654f, kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f,
                       kLn2Lo = -2.12194440e-4f;
inline constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// erf(z): z·P(z²)/Q(z²) on [-4, 4] and ±1 beyond (|erf(4)| = 1 - 1.5e-8), with the coefficients of the float
// rational approximation Eigen and XLA use (degree 6 / 4 in z²); max abs error 3e-7 against std::erf. NaN
// stays NaN through x in gelu_avx512 (min/max drop it here).
__attribute__((target("avx512f"))) inline __m512 erf512(__m512 z) {
  z = _mm512_max_ps(_mm512_min_ps(z, _mm512_set1_ps(4.0f)), _mm512_set1_ps(-4.0f));
  const __m512 z2 = _mm512_mul_ps(z, z);
  __m512 p = _mm512_set1_ps(kErfP[0]);
  for (int i = 1; i < 7; ++i) p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(kErfP[i]));
  __m512 q = _mm512_set1_ps(kErfQ[0]);
  for (int i = 1; i < 5; ++i) q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(kErfQ[i]));
  return _mm512_div_ps(_mm512_mul_ps(z, p), q);
}

// exp(x) for x <= 0 (Cephes' expf: range reduction by ln 2, degree-6 polynomial, 2^n by scalef): ~1 ulp; exactly 0
// below -87.3 (-inf included), where the float range ends: no subnormal results, which cost a microcode assist in
// every later operation that reads them.
__attribute__((target("avx512f"))) inline __m512 exp512_nonpos(__m512 x) {
  const __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpMin), _CMP_NLT_UQ);  // NaN stays NaN below
  x = _mm512_max_ps(x, _mm512_set1_ps(kExpMin));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), x);
  __m512 p = _mm512_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(kExpP[i]));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(normal, _mm512_scalef_ps(p, n));
}

// gelu(x) = 0.5·x·(1 + erf(x/√2)) and its slope Φ(x) + x·φ(x) (what ATen's gelu_backward multiplies the gradient
// by), 16 lanes.
__attribute__((target("avx512f"))) inline __m512 gelu512(__m512 x) {
  const __m512 e = erf512(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
__attribute__((target("avx512f"))) inline __m512 gelu_slope512(__m512 x) {
  const __m512 cdf = _mm512_mul_ps(_mm512_set1_ps(0.5f),
                                   _mm512_add_ps(_mm512_set1_ps(1.0f),
                                                 erf512(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)))));
  const __m512 pdf = _mm512_mul_ps(exp512_nonpos(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(x, x))),
                                   _mm512_set1_ps(0.398942280401432677939946059934f));
  return _mm512_fmadd_ps(x, pdf, cdf);
}

// In place: y = 0.5·y·(1 + erf(y/√2)) (torch::gelu's erf form). As a pass after the GEMM it beats oneDNN's
// eltwise_gelu_erf post-op: ~85 vs ~155 µs on ff1's [544, 1024] output at 1 thread (bench/dnnl_gelu_mb.cpp,
// docs/results/engine.md 2026-12-06 "GELU").
__attribute__((target("avx512f"))) inline void gelu_avx512(float* y, int64_t n) {
  const __m512 c = _mm512_set1_ps(0.70710678118654752f), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, y + i);
    const __m512 e = erf512(_mm512_mul_ps(x, c));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, e)));
  }
}

}  // namespace braid::nn
