#include "braid/nn/fusion/mfb.h"

#include <torch/torch.h>

#include <cmath>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

MFBFusionOptions MFBFusionOptions::from_config(const Config& c) {
  MFBFusionOptions o;
  o.k = c.get<int64_t>("k", o.k);
  o.out = c.get<int64_t>("out", o.out);
  o.dropout = c.get<double>("dropout", o.dropout);
  o.power_eps = c.get<double>("power_eps", o.power_eps);
  BRAID_INPUT_CHECK(o.k > 0 && o.out > 0, "{}: '{}' needs positive k and out (got {}, {})", c.origin(), c.path(), o.k,
                    o.out);
  BRAID_INPUT_CHECK(o.dropout >= 0 && o.dropout < 1, "{}: '{}': dropout must be in [0, 1) (got {})", c.origin(),
                    c.full("dropout"), o.dropout);
  BRAID_INPUT_CHECK(o.power_eps > 0, "{}: '{}': power_eps must be positive (got {})", c.origin(), c.full("power_eps"),
                    o.power_eps);
  return o;
}

MFBFusionImpl::MFBFusionImpl(MFBFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("mfb", ctx);
  TORCH_CHECK(o.k > 0 && o.out > 0 && o.power_eps > 0, "mfb fusion: k, out and power_eps must be positive");
  const auto M = static_cast<int64_t>(dims_.size());
  if (M == 1) pairs_.emplace_back(0, -1);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j < M; ++j) pairs_.emplace_back(i, j);
  u_ = register_module("u", torch::nn::ModuleList());
  v_ = register_module("v", torch::nn::ModuleList());
  for (const auto& [i, j] : pairs_) {
    ul_.emplace_back(dims_[i], o.k * o.out);
    u_->push_back(ul_.back());
    if (j < 0) continue;
    vl_.emplace_back(dims_[j], o.k * o.out);
    v_->push_back(vl_.back());
  }
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
  out_dim_ = static_cast<int64_t>(pairs_.size()) * o.out;
}

torch::Tensor MFBFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("mfb", dims_, feats, present);
  const int64_t B = present.size(0);
  const double sqrt_eps = std::sqrt(options.power_eps);
  std::vector<torch::Tensor> outs;
  for (size_t p = 0; p < pairs_.size(); ++p) {
    const auto [i, j] = pairs_[p];
    const auto dt = feats[i].scalar_type();
    auto zt = ul_[p]->forward(feats[i]) * presence_column(present, i, dt);  // [B, k·o]
    if (j >= 0) zt = zt * vl_[p]->forward(feats[j]) * presence_column(present, j, dt);
    zt = drop_->forward(zt);
    auto z = zt.view({B, options.out, options.k}).sum(2);                            // [B, o]
    z = torch::sign(z) * (torch::sqrt(z.abs() + options.power_eps) - sqrt_eps);  // power normalization
    z = z / z.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);                    // L2 normalization
    outs.push_back(z);
  }
  return outs.size() == 1 ? outs[0] : torch::cat(outs, 1);
}

}  // namespace braid::nn
