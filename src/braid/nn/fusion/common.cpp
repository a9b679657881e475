#include "braid/nn/fusion/common.h"

#include <torch/torch.h>

#include <limits>

namespace braid::nn::fusion_detail {

void check_context(const std::string& op, const FusionContext& ctx) {
  TORCH_CHECK(!ctx.dims.empty(), op, " fusion: needs at least one modality");
  TORCH_CHECK(ctx.modalities.empty() || ctx.modalities.size() == ctx.dims.size(), op, " fusion: ",
              ctx.modalities.size(), " modality names for ", ctx.dims.size(), " dims");
  for (size_t m = 0; m < ctx.dims.size(); ++m)
    TORCH_CHECK(ctx.dims[m] > 0, op, " fusion: modality ", m, " has width ", ctx.dims[m], " (must be positive)");
}

void check_inputs(const std::string& op, const std::vector<int64_t>& dims, const std::vector<torch::Tensor>& feats,
                  const torch::Tensor& present) {
  const auto M = static_cast<int64_t>(dims.size());
  TORCH_CHECK(static_cast<int64_t>(feats.size()) == M, op, " fusion: got ", feats.size(),
              " modality tensors, built for ", M);
  TORCH_CHECK(present.defined() && present.dim() == 2 && present.size(1) == M, op, " fusion: present must be [B, ", M,
              "], got ", present.defined() ? present.sizes() : torch::IntArrayRef{});
  const int64_t B = present.size(0);
  for (int64_t m = 0; m < M; ++m)
    TORCH_CHECK(feats[m].defined() && feats[m].dim() == 2 && feats[m].size(0) == B && feats[m].size(1) == dims[m], op,
                " fusion: feats[", m, "] must be [", B, ", ", dims[m], "], got ",
                feats[m].defined() ? feats[m].sizes() : torch::IntArrayRef{});
}

torch::Tensor presence_column(const torch::Tensor& present, int64_t m, torch::ScalarType dtype) {
  return present.select(1, m).unsqueeze(1).to(dtype);
}

torch::Tensor masked_softmax(const torch::Tensor& x, const torch::Tensor& mask, int64_t dim) {
  auto any = mask.any(dim, /*keepdim=*/true);
  auto eff = mask.logical_or(any.logical_not());  // nothing present: softmax over all, zeroed below
  auto y = torch::softmax(x.masked_fill(eff.logical_not(), -std::numeric_limits<double>::infinity()), dim);
  return y * mask.to(y.scalar_type());
}

std::vector<std::vector<int64_t>> modality_subsets(int64_t M) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t k = 1; k <= M; ++k) {
    std::vector<int64_t> c(k);
    for (int64_t i = 0; i < k; ++i) c[i] = i;
    while (true) {
      out.push_back(c);
      int64_t i = k - 1;  // rightmost member that can still move right
      while (i >= 0 && c[i] == M - k + i) --i;
      if (i < 0) break;
      ++c[i];
      for (int64_t j = i + 1; j < k; ++j) c[j] = c[j - 1] + 1;
    }
  }
  return out;
}

}  // namespace braid::nn::fusion_detail
