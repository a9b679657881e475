#include "braid/nn/fusion/attention.h"

#include <torch/torch.h>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

AttentionFusionOptions AttentionFusionOptions::from_config(const Config& c) {
  AttentionFusionOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  BRAID_INPUT_CHECK(o.dim > 0 && o.hidden > 0, "{}: '{}' needs positive dim and hidden (got {}, {})", c.origin(),
                    c.path(), o.dim, o.hidden);
  return o;
}

AttentionFusionImpl::AttentionFusionImpl(AttentionFusionOptions o, const FusionContext& ctx)
    : options(o), dims_(ctx.dims) {
  check_context("attention", ctx);
  TORCH_CHECK(o.dim > 0 && o.hidden > 0, "attention fusion: dim and hidden must be positive");
  proj_ = register_module("proj", torch::nn::ModuleList());
  for (auto d : dims_) {
    lin_.emplace_back(d, o.dim);
    proj_->push_back(lin_.back());
  }
  att_ = register_module("att", torch::nn::Linear(o.dim, o.hidden));
  score_ = register_module("score", torch::nn::Linear(torch::nn::LinearOptions(o.hidden, 1).bias(false)));
  out_dim_ = o.dim;
}

torch::Tensor AttentionFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("attention", dims_, feats, present);
  std::vector<torch::Tensor> ps;
  for (size_t m = 0; m < lin_.size(); ++m) ps.push_back(lin_[m]->forward(feats[m]));
  auto p = torch::stack(ps, 1);                                         // [B, M, dim]
  auto s = score_->forward(torch::tanh(att_->forward(p))).squeeze(2);  // [B, M]
  auto alpha = masked_softmax(s, present > 0.5, 1);                    // [B, M], absent -> 0
  last_alpha_ = alpha.detach();
  return (alpha.unsqueeze(2) * p).sum(1);                               // [B, dim]
}

}  // namespace braid::nn
