// src/braid/nn/fused.h — fused CPU kernels for the Transformer block (issue 19), each with its own backward (a
// custom autograd Function; first-order gradients only).
//
// Training kernels (gelu, dropout_add, attention_qkv; float and bf16): TransformerBlock trains with them by default
// on AVX-512 CPUs (set_fused_train; BRAID_FUSED_TRAIN=0 in the CLI turns them off).
//
// The older float kernels (bias + GELU and residual add + LayerNorm, each one pass over the rows with scalar
// math): TransformerBlock uses them only when switched on (set_fused_kernels, off by default: see
// docs/results/engine.md for the measured figures) and the tensors allow it (CPU, float or double, the same dtype
// throughout); then they take precedence over the training kernels. Elsewhere they are plain functions usable on
// any CPU tensors of float or double.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace braid::nn {

// gelu(x + bias) (the exact, erf form: torch::gelu's default). x [..., F] (any leading dims), bias [F];
// same dtype (float or double), CPU. Returns a new tensor shaped like x. Differentiable in x and bias.
at::Tensor bias_gelu(const at::Tensor& x, const at::Tensor& bias);

// h = x + r and y = layer_norm(h) over the last dim with `weight` and `bias` [D] (eps as torch's LayerNorm).
// x, r [..., D] of the same shape and dtype (float or double), CPU. Returns {h, y}; differentiable in x, r,
// weight and bias through both outputs.
std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& x, const at::Tensor& r, const at::Tensor& weight,
                                                 const at::Tensor& bias, double eps = 1e-5);

// --- Training kernels of the Transformer block (issue 19): on by default where the CPU has AVX-512 ---
//
// What a CPU training step spends outside the GEMMs once those run in bf16 (docs/results/engine.md, "CPU training:
// the CLIP step"): ATen's dropout (a scalar Bernoulli draw per element), its GELU and GELU backward (AVX2, bf16
// converted per element), and residual adds of a float stream and a bf16 GEMM output (TensorIterator's scalar
// mixed-dtype loop). Each function below is one vectorised pass with its own backward; an AVX-512 path (avx512f,
// detected at run time) and a scalar path with the same results up to float rounding.

// gelu(z), the erf form (torch::gelu's default), for z float or bfloat16 on the CPU (any shape; made contiguous).
// Computes in float, returns z's dtype; the backward multiplies by Φ(z) + z·φ(z) in float and returns z's dtype.
// AVX-512 path: erf and exp by rational / polynomial approximations (max abs error 3e-7 / 1 ulp).
at::Tensor gelu(const at::Tensor& z);

// h = x + dropout(o, p): o's elements kept with probability 1 - p and scaled by 1 / (1 - p) (p = 0: h = x + o).
// x float, o float or bfloat16 of x's shape, CPU; returns float. The keep mask comes from a counter-based hash
// of the element index and a 64-bit seed drawn from ATen's default CPU generator (torch::manual_seed makes it
// repeatable; not the stream ATen's dropout draws), stored as one bit per element for the backward, which
// returns the gradient unchanged for x and masked, scaled and cast to o's dtype for o. 0 <= p < 1.
at::Tensor dropout_add(const at::Tensor& x, const at::Tensor& o, double p);

// softmax(q kᵀ / √d, key padding) v for every (batch row, head) straight from TransformerBlock's fused qkv
// projection: qkv [B, T, 3·H·d] float or bfloat16 CPU (per token q, k, v side by side, each [H, d]); pad [B, T] bool
// (true = padding key) or undefined. Returns [B, T, H·d] in qkv's dtype (the heads side by side, what the block's
// transpose + reshape gives); a query whose keys are all padding gets zeros (as the unfused path's nan_to_num).
// Scores, softmax and products in float, one (b, h) at a time with T x T scratch (no [B, H, T, T] score tensors,
// no casts between ops); keeps the float probabilities [B, H, T, ⌈T/16⌉·16] for the backward, which returns the
// gradient of qkv in its dtype. Meant for short sequences (the bench towers: T = 17-24, d = 64).
at::Tensor attention_qkv(const at::Tensor& qkv, int64_t heads, const at::Tensor& pad = {});

// Process-wide switch read by TransformerBlock::forward (default on): the block trains with attention_qkv, gelu
// and dropout_add where fused_train_applies(x). The CLI turns it off for BRAID_FUSED_TRAIN=0.
void set_fused_train(bool on);
bool fused_train_enabled();
// Switched on, x float32 on the CPU, and the AVX-512 path available (without it the scalar loops are no faster
// than ATen's).
bool fused_train_applies(const at::Tensor& x);
// Tests: force the scalar path of gelu and dropout_add (false: AVX-512 where the CPU has it).
void set_fused_train_scalar(bool scalar);

// Process-wide switch read by TransformerBlock::forward (default off). `braid bench speed --fused` sets it.
void set_fused_kernels(bool on);
bool fused_kernels();

}  // namespace braid::nn
