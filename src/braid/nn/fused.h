// src/braid/nn/fused.h — fused CPU kernels for the Transformer block (issue 19): bias + GELU and
// residual add + LayerNorm, each one pass over the rows (at::parallel_for) instead of two or three ATen
// kernels, with their own backward (a custom autograd Function; first-order gradients only).
//
// TransformerBlock uses them only when fused kernels are switched on (set_fused_kernels, off by default:
// see docs/results/engine.md for the measured figures) and the tensors allow it (CPU, float or double, the
// same dtype throughout: under bf16 autocast the block keeps the unfused ops). Elsewhere they are plain
// functions usable on any CPU tensors of float or double.
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

// Process-wide switch read by TransformerBlock::forward (default off). `braid bench speed --fused` sets it.
void set_fused_kernels(bool on);
bool fused_kernels();

}  // namespace braid::nn
