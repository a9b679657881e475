#include "braid/nn/fusion/max.h"

#include <torch/torch.h>

#include <limits>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

MaxFusionOptions MaxFusionOptions::from_config(const Config& c) {
  MaxFusionOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(o.dim > 0, "{}: '{}': dim must be positive (got {})", c.origin(), c.full("dim"), o.dim);
  return o;
}

MaxFusionImpl::MaxFusionImpl(MaxFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("max", ctx);
  TORCH_CHECK(o.dim > 0, "max fusion: dim must be positive");
  proj_ = register_module("proj", torch::nn::ModuleList());
  for (auto d : dims_) {
    lin_.emplace_back(d, o.dim);
    proj_->push_back(lin_.back());
  }
  out_dim_ = o.dim;
}

torch::Tensor MaxFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("max", dims_, feats, present);
  std::vector<torch::Tensor> ps;
  for (size_t m = 0; m < lin_.size(); ++m) ps.push_back(lin_[m]->forward(feats[m]));
  auto p = torch::stack(ps, 1);                  // [B, M, dim]
  auto mask = (present > 0.5).unsqueeze(2);      // [B, M, 1]
  auto z = std::get<0>(p.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity()).max(1));
  return z.masked_fill(mask.any(1).logical_not(), 0.0);  // rows with nothing present: 0 (and zero gradient)
}

}  // namespace braid::nn
