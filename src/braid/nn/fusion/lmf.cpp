#include "braid/nn/fusion/lmf.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

LMFFusionOptions LMFFusionOptions::from_config(const Config& c) {
  LMFFusionOptions o;
  o.rank = c.get<int64_t>("rank", o.rank);
  o.out = c.get<int64_t>("out", o.out);
  BRAID_INPUT_CHECK(o.rank > 0 && o.out > 0, "{}: '{}' needs positive rank and out (got {}, {})", c.origin(), c.path(),
                    o.rank, o.out);
  return o;
}

LMFFusionImpl::LMFFusionImpl(LMFFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("lmf", ctx);
  TORCH_CHECK(o.rank > 0 && o.out > 0, "lmf fusion: rank and out must be positive");
  torch::NoGradGuard ng;
  for (size_t m = 0; m < dims_.size(); ++m) {
    auto w = torch::empty({o.rank, dims_[m] + 1, o.out});
    torch::nn::init::xavier_normal_(w);  // as the LMF reference code
    factors_.push_back(register_parameter("factor_" + std::to_string(m), w));
  }
  // xavier_normal_ of the reference's [1, R] weight: std = sqrt(2 / (1 + R))
  lambda_ = register_parameter("fusion_weights", torch::randn({o.rank}) * std::sqrt(2.0 / (1.0 + o.rank)));
  bias_ = register_parameter("fusion_bias", torch::zeros({o.out}));
  out_dim_ = o.out;
}

torch::Tensor LMFFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("lmf", dims_, feats, present);
  const int64_t B = present.size(0), R = options.rank;
  torch::Tensor prod;
  for (size_t m = 0; m < factors_.size(); ++m) {
    auto h = feats[m] * presence_column(present, m, feats[m].scalar_type());
    auto h1 = torch::cat({h, torch::ones({B, 1}, h.options())}, 1);  // [B, d_m+1]
    auto f = torch::matmul(h1, factors_[m]);                         // [R, B, out]
    prod = prod.defined() ? prod * f : f;
  }
  return (lambda_.view({R, 1, 1}) * prod).sum(0) + bias_;  // [B, out]
}

}  // namespace braid::nn
