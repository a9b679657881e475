#include "braid/nn/fusion/concat.h"

#include <torch/torch.h>

namespace braid::nn {

ConcatFusionOptions ConcatFusionOptions::from_config(const Config& c) {
  ConcatFusionOptions o;
  o.presence_bits = c.get<bool>("presence_bits", o.presence_bits);
  return o;
}

ConcatFusionImpl::ConcatFusionImpl(ConcatFusionOptions o, const FusionContext& ctx) : options(o) {
  for (auto d : ctx.dims) out_dim_ += d;
  if (o.presence_bits) out_dim_ += static_cast<int64_t>(ctx.dims.size());
}

torch::Tensor ConcatFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  std::vector<torch::Tensor> parts(feats.begin(), feats.end());
  if (options.presence_bits) parts.push_back(present);
  return torch::cat(parts, 1);
}

}  // namespace braid::nn
