// braid/nn/blocks.h — building blocks shared by encoders, fusions and heads.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <vector>

namespace braid::nn {

// Mean over valid steps. x [B, T, D], lengths [B] (0 allowed: gives zeros) -> [B, D].
torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& lengths);

// Key padding mask [B, T] bool: true where the step is padding.
torch::Tensor padding_mask(const torch::Tensor& lengths, int64_t T);

// y = x Wᵀ + b through at::linear, which folds a contiguous [..., in] input into one GEMM with the bias
// in its epilogue (what Python's F.linear does). The C++ frontend's Linear::forward instead runs
// matmul and then an in-place broadcast `+= bias` for inputs of more than two dimensions; under bf16
// autocast that adds the fp32 bias into the bf16 product with a slow casting kernel: on the H100
// ViT-B/16 CLIP benchmark it was 77 ms of 376 ms of kernel time (docs/gpu.md). Use it for every
// Linear that sees sequences.
torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x);

struct MLPOptions {
  int64_t in = 0;                    // input width
  std::vector<int64_t> hidden{};     // hidden widths (empty: a single linear layer)
  int64_t out = 0;                   // output width
  double dropout = 0.0;              // dropout after every hidden activation
};

// Linear -> ReLU -> Dropout for each hidden width, then a final Linear.
class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(MLPOptions o);
  torch::Tensor forward(torch::Tensor x);
  MLPOptions options;

 private:
  torch::nn::Sequential seq_{nullptr};
};
TORCH_MODULE(MLP);

struct TransformerBlockOptions {
  int64_t dim = 128;        // model width
  int64_t heads = 4;        // attention heads (dim % heads == 0)
  int64_t ff_mult = 4;      // feed-forward width = ff_mult * dim
  double dropout = 0.0;     // dropout on attention output and feed-forward
};

// Pre-norm Transformer block: x + Attn(LN(x)), then x + FFN(LN(x)).
// Attention uses scaled_dot_product_attention on LibTorch 2.x and explicit softmax attention on 1.13.
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(TransformerBlockOptions o);
  // x [B, T, D]; pad [B, T] bool (true = padding) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& pad = {});
  TransformerBlockOptions options;

 private:
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, ff1_{nullptr}, ff2_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(TransformerBlock);

// softmax(q kᵀ / √d + mask) v. q [B, H, Tq, d], k/v [B, H, Tk, d]; pad [B, Tk] bool (true = ignore).
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& pad = {});

}  // namespace braid::nn
