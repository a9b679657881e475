#include "braid/nn/projectors.h"

#include <torch/torch.h>

namespace braid::nn {

ProjectorOptions ProjectorOptions::from_config(const Config& c) {
  ProjectorOptions o;
  o.name = c.get<std::string>("name", o.name);
  o.queries = c.get<int64_t>("queries", o.queries);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.heads = c.get<int64_t>("heads", o.heads);
  o.ff_mult = c.get<int64_t>("ff_mult", o.ff_mult);
  BRAID_INPUT_CHECK(o.name == "qformer" || o.name == "perceiver", "{}: recipe key '{}': expected qformer or perceiver, got '{}'",
                    c.origin(), c.full("name"), o.name);
  BRAID_INPUT_CHECK(o.queries >= 1 && o.layers >= 1 && o.heads >= 1 && o.ff_mult >= 1,
                    "{}: '{}': queries, layers, heads and ff_mult must be at least 1", c.origin(), c.path());
  return o;
}

CrossAttentionImpl::CrossAttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
  q_ = register_module("q", torch::nn::Linear(dim, dim));
  kv_ = register_module("kv", torch::nn::Linear(dim, 2 * dim));
  o_ = register_module("o", torch::nn::Linear(dim, dim));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& pad) {
  const int64_t B = x.size(0), Q = x.size(1), T = c.size(1), D = x.size(2), d = D / heads_;
  auto q = linear(q_, x).view({B, Q, heads_, d}).transpose(1, 2);
  auto kv = linear(kv_, c).view({B, T, 2, heads_, d}).permute({2, 0, 3, 1, 4});
  auto y = attention(q, kv[0], kv[1], pad);  // [B, H, Q, d]
  return linear(o_, y.transpose(1, 2).reshape({B, Q, D}));
}

ProjectorImpl::ProjectorImpl(ProjectorOptions o, int64_t dim) : options(o), dim_(dim) {
  TORCH_CHECK(dim % o.heads == 0, "projector: width ", dim, " is not a multiple of heads ", o.heads);
  queries_ = register_parameter("queries", torch::randn({1, o.queries, dim}) * 0.02);
  self_ = register_module("self", torch::nn::ModuleList());
  cross_ = register_module("cross", torch::nn::ModuleList());
  ln_q_ = register_module("ln_q", torch::nn::ModuleList());
  ln_c_ = register_module("ln_c", torch::nn::ModuleList());
  ff_ = register_module("ff", torch::nn::ModuleList());
  ln_ff_ = register_module("ln_ff", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) {
    // qformer: the queries' self-attention + feed-forward is one pre-norm block; then cross-attention
    if (o.name == "qformer") self_->push_back(TransformerBlock(TransformerBlockOptions{dim, o.heads, o.ff_mult, 0.0}));
    cross_->push_back(CrossAttention(dim, o.heads));
    ln_q_->push_back(torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    ln_c_->push_back(torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    ff_->push_back(MLP(MLPOptions{dim, {o.ff_mult * dim}, dim, 0.0}));
    ln_ff_->push_back(torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  }
}

torch::Tensor ProjectorImpl::forward(const torch::Tensor& tokens, const torch::Tensor& pad) {
  const int64_t B = tokens.size(0);
  auto x = queries_.expand({B, options.queries, dim_});
  for (int64_t i = 0; i < options.layers; ++i) {
    auto lq = ln_q_[i]->as<torch::nn::LayerNorm>();
    auto lc = ln_c_[i]->as<torch::nn::LayerNorm>();
    auto ca = cross_[i]->as<CrossAttention>();
    if (options.name == "qformer") {
      x = self_[i]->as<TransformerBlock>()->forward(x);
      x = x + ca->forward(lq->forward(x), lc->forward(tokens), pad);
    } else {
      // perceiver resampler: keys and values are the tokens and the latents themselves
      auto h = lq->forward(x);
      auto ctx = torch::cat({lc->forward(tokens), h}, 1);
      torch::Tensor p;
      if (pad.defined())
        p = torch::cat({pad, torch::zeros({B, options.queries}, pad.options())}, 1);
      x = x + ca->forward(h, ctx, p);
    }
    x = x + ff_[i]->as<MLP>()->forward(ln_ff_[i]->as<torch::nn::LayerNorm>()->forward(x));
  }
  return x.mean(1);
}

}  // namespace braid::nn
