#include "braid/nn/fusion/tfn.h"

#include <torch/torch.h>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

TFNFusionOptions TFNFusionOptions::from_config(const Config& c) {
  TFNFusionOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.out = c.get<int64_t>("out", o.out);
  o.dropout = c.get<double>("dropout", o.dropout);
  BRAID_INPUT_CHECK(o.dim > 0 && o.out > 0, "{}: '{}' needs positive dim and out (got {}, {})", c.origin(), c.path(),
                    o.dim, o.out);
  BRAID_INPUT_CHECK(o.dropout >= 0 && o.dropout < 1, "{}: '{}': dropout must be in [0, 1) (got {})", c.origin(),
                    c.full("dropout"), o.dropout);
  return o;
}

TFNFusionImpl::TFNFusionImpl(TFNFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("tfn", ctx);
  TORCH_CHECK(o.dim > 0 && o.out > 0, "tfn fusion: dim and out must be positive");
  int64_t size = 1;
  for (size_t m = 0; m < dims_.size(); ++m) {
    TORCH_CHECK(size <= kTFNMaxTensor / (o.dim + 1), "tfn fusion: the fused tensor (", o.dim, "+1)^", dims_.size(),
                " is larger than ", kTFNMaxTensor, " entries; use a smaller dim");
    size *= o.dim + 1;
  }
  proj_ = register_module("proj", torch::nn::ModuleList());
  for (auto d : dims_) {
    lin_.emplace_back(d, o.dim);
    proj_->push_back(lin_.back());
  }
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
  post_ = register_module("post", torch::nn::Linear(size, o.out));
  out_dim_ = o.out;
}

torch::Tensor TFNFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("tfn", dims_, feats, present);
  const int64_t B = present.size(0);
  torch::Tensor t;
  for (size_t m = 0; m < lin_.size(); ++m) {
    auto z = lin_[m]->forward(feats[m]) * presence_column(present, m, feats[m].scalar_type());  // [B, d]
    auto z1 = torch::cat({z, torch::ones({B, 1}, z.options())}, 1);                           // [B, d+1]
    t = t.defined() ? (t.unsqueeze(2) * z1.unsqueeze(1)).reshape({B, -1}) : z1;  // [B, Π_{<=m}(d+1)]
  }
  return torch::relu(post_->forward(drop_->forward(t)));
}

}  // namespace braid::nn
