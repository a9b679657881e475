// src/braid/nn/fused_infer.h — fused CPU kernels for inference (issue 19), no autograd: what a pre-packed
// forward (nn/prepack.h) spends its time on outside the GEMMs, per `braid bench speed --op-profile`
// (docs/results/engine.md, 2026-12-06).
//
// - infer_attention: softmax(q kᵀ / √d, key padding) v straight from the fused qkv projection, one pass per
//   (batch row, head) with the scores in a stack-sized buffer: no [B, H, T, T] tensor, no softmax/mask
//   kernels, no strided batched GEMM calls (the small-T attention of the bench towers: T = 17-24, d = 64).
// - infer_layer_norm: LayerNorm over the last dim, one read of each row for the moments and one write.
//
// Each has an AVX-512 path (used when the CPU has avx512f, detected at run time by core/cpu_features.h), an AVX2
// path (8 floats a vector, with FMA: CPUs without AVX-512) and a scalar path (any other CPU, or forced by
// set_fused_infer_isa(Isa::Scalar)). Both follow the unfused ops'
// order of operations up to float rounding (tests/fused_infer_test.cpp: max abs diff against ATen).
// TransformerBlock (and ImageViT's / TextTransformer's final LayerNorm) use them only on the pre-packed inference
// path, fused_infer_applies(); fused_infer_enabled() is on by default (the CLI turns it off for
// BRAID_FUSED_INFER=0, docs/cli.md). On the same path ImageViT embeds patches by one reshape and a GEMM instead of
// the strided convolution (packed_linear on the convolution's weight, which prepack_linears packs).
#pragma once

#include <ATen/core/Tensor.h>

namespace torch::nn {
class LayerNormImpl;
}

namespace braid::nn {

// qkv [B, T, 3·H·d] contiguous float32 CPU (per token: q, k, v side by side, each [H, d]: TransformerBlock's
// layout); pad [B, T] bool (true = padding key) or undefined. Returns [B, T, H·d]; a query whose keys are all
// padding gets zeros (as the unfused path's nan_to_num). Throws (c10::Error) on other shapes or dtypes.
at::Tensor infer_attention(const at::Tensor& qkv, int64_t heads, const at::Tensor& pad = {});

// layer_norm(x) over the last dim with weight and bias [D] (float32, CPU); x [..., D] float32 CPU (made
// contiguous). Returns a new tensor shaped like x.
at::Tensor infer_layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps = 1e-5);

// In place: y = gelu(y), the erf form (torch::gelu's default); y contiguous float32 CPU. The AVX-512 path's erf
// is a rational approximation (max abs error 3e-7 vs std::erf); NaN propagates. Used after ff1's packed GEMM
// instead of oneDNN's GELU post-op (faster at 1 thread: docs/results/engine.md, 2026-12-06 "GELU").
void infer_gelu_(at::Tensor& y);

// Which instructions the kernels use: Auto = AVX-512 where the CPU has it, else AVX2 + FMA where it has those,
// else scalar; Avx2 = the AVX2 path even on an AVX-512 CPU (scalar without AVX2; tests run it on every x86 host);
// Scalar = always the scalar path (tests; a check of the fallback). Process-wide.
enum class Isa { Auto, Avx2, Scalar };
void set_fused_infer_isa(Isa isa);
// True when the next call runs the AVX-512 path / the AVX2 path.
bool fused_infer_uses_avx512();
bool fused_infer_uses_avx2();

// Process-wide switch read by TransformerBlock::forward (default on).
void set_fused_infer(bool on);
bool fused_infer_enabled();

// Whether the encoders take the fused inference path for input x: switched on, weights pre-packed
// (any_prepacked(), nn/prepack.h), grad mode off, CPU autocast off, x float32 on the CPU, and a vector path
// (AVX-512 or AVX2) available (without one ATen's LayerNorm and packed_attention are as fast as the scalar kernels).
bool fused_infer_applies(const at::Tensor& x);

// ln(x): infer_layer_norm where fused_infer_applies(x) and ln's weight is float32, else ln's own forward
// (TransformerBlock's LayerNorms, ImageViT's and TextTransformer's final one).
at::Tensor layer_norm_inference(torch::nn::LayerNormImpl& ln, const at::Tensor& x);

}  // namespace braid::nn
