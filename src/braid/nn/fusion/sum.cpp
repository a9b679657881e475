#include "braid/nn/fusion/sum.h"

#include <torch/torch.h>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

SumFusionOptions SumFusionOptions::from_config(const Config& c) {
  SumFusionOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(o.dim > 0, "{}: '{}': dim must be positive (got {})", c.origin(), c.full("dim"), o.dim);
  return o;
}

SumFusionImpl::SumFusionImpl(SumFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("sum", ctx);
  TORCH_CHECK(o.dim > 0, "sum fusion: dim must be positive");
  proj_ = register_module("proj", torch::nn::ModuleList());
  for (auto d : dims_) {
    lin_.emplace_back(d, o.dim);
    proj_->push_back(lin_.back());
  }
  out_dim_ = o.dim;
}

torch::Tensor SumFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("sum", dims_, feats, present);
  torch::Tensor z;
  for (size_t m = 0; m < lin_.size(); ++m) {
    auto p = lin_[m]->forward(feats[m]) * presence_column(present, m, feats[m].scalar_type());  // [B, dim]
    z = z.defined() ? z + p : p;
  }
  return z;
}

}  // namespace braid::nn
