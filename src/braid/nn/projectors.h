// braid/nn/projectors.h — cross-attention projectors: a fixed number of learned queries read a
// variable-length token sequence (e.g. a frozen encoder's patch tokens) and summarize it.
//
//   qformer    (BLIP-2 style) per layer: self-attention among the queries, cross-attention from the
//              queries into the tokens, feed-forward (pre-norm, residual)
//   perceiver  (Flamingo resampler style) per layer: the latents attend to [tokens; latents], then
//              feed-forward (pre-norm, residual)
// Both return the mean of the final queries [B, dim]. Recipe map:
//   {name: qformer | perceiver, queries: 32, layers: 2, heads: 4, ff_mult: 2}
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <memory>
#include <string>

#include "braid/core/config.h"
#include "braid/nn/blocks.h"

namespace braid::nn {

struct ProjectorOptions {
  std::string name = "qformer";
  int64_t queries = 32;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t ff_mult = 2;
  static ProjectorOptions from_config(const Config& c);
};

// Multi-head attention of queries x [B, Q, D] over context c [B, T, D]; pad [B, T] (true = ignore).
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& pad = {});

 private:
  int64_t heads_;
  torch::nn::Linear q_{nullptr}, kv_{nullptr}, o_{nullptr};
};
TORCH_MODULE(CrossAttention);

class ProjectorImpl : public torch::nn::Module {
 public:
  ProjectorImpl(ProjectorOptions o, int64_t dim);
  // tokens [B, T, dim], pad [B, T] or undefined -> [B, dim]
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& pad = {});
  ProjectorOptions options;

 private:
  int64_t dim_;
  torch::Tensor queries_;
  torch::nn::ModuleList self_{nullptr}, cross_{nullptr}, ln_q_{nullptr}, ln_c_{nullptr}, ff_{nullptr}, ln_ff_{nullptr};
};
TORCH_MODULE(Projector);

}  // namespace braid::nn
