#include "braid/nn/fusion/gmu.h"

#include <torch/torch.h>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

GMUFusionOptions GMUFusionOptions::from_config(const Config& c) {
  GMUFusionOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(o.dim > 0, "{}: '{}': dim must be positive (got {})", c.origin(), c.full("dim"), o.dim);
  return o;
}

GMUFusionImpl::GMUFusionImpl(GMUFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("gmu", ctx);
  TORCH_CHECK(o.dim > 0, "gmu fusion: dim must be positive");
  hidden_ = register_module("hidden", torch::nn::ModuleList());
  int64_t total = 0;
  for (auto d : dims_) {
    lin_.emplace_back(d, o.dim);
    hidden_->push_back(lin_.back());
    total += d;
  }
  gate_ = register_module("gate", torch::nn::Linear(total, static_cast<int64_t>(dims_.size()) * o.dim));
  out_dim_ = o.dim;
}

torch::Tensor GMUFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("gmu", dims_, feats, present);
  const int64_t B = present.size(0), M = static_cast<int64_t>(dims_.size()), D = options.dim;
  std::vector<torch::Tensor> hs;
  for (int64_t m = 0; m < M; ++m) hs.push_back(torch::tanh(lin_[m]->forward(feats[m])));
  auto h = torch::stack(hs, 1);                                       // [B, M, D]
  auto logits = gate_->forward(torch::cat(feats, 1)).view({B, M, D});  // [B, M, D]
  auto g = masked_softmax(logits, (present > 0.5).unsqueeze(2), 1);   // softmax over m, absent -> 0
  return (g * h).sum(1);                                              // [B, D]
}

}  // namespace braid::nn
