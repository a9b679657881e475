// src/braid/nn/pool.h — ReLU followed by 2×2 max pooling (stride 2) as one CPU kernel with its own
// backward (issue 19). ConvStack (nn/conv.cpp) ends every conv block with relu -> max_pool2d(2, 2); on CPU at
// one thread ATen's NCHW max_pool2d_with_indices took 38 % of an AV-MNIST training step (a scalar loop with
// int64 indices; bf16 no faster), more than the convolutions; in channels-last ATen is faster but still
// takes relu, pool, their backward and a zero fill as five passes. This kernel computes the same values and the
// same gradients: max is monotonic, so pool(relu(x)) = relu(pool(x)); the arg-max in ATen's scan order (row
// by row, first strict maximum, NaN wins) goes to one byte per output, and the backward writes the input
// gradient in one pass (no zero fill, no scatter).
#pragma once

#include <ATen/core/Tensor.h>

namespace braid::nn {

// relu(x) then max_pool2d(kernel 2, stride 2, no padding, `ceil` mode) over the last two dims.
// x [N, C, H, W] on the CPU, contiguous in NCHW or in channels-last (the output keeps the layout), float,
// double or bfloat16, H >= 2 and W >= 2.
// Equal to torch::max_pool2d(torch::relu(x), 2, 2, 0, 1, ceil) in value, and its gradient in x equal to
// that composition's (first-order only). Differentiable in x.
at::Tensor relu_max_pool2x2(const at::Tensor& x, bool ceil);

// Whether relu_max_pool2x2 takes `x` (device, dtype, layout and size as above); ConvStack uses ATen otherwise.
bool relu_max_pool2x2_applies(const at::Tensor& x);

}  // namespace braid::nn
