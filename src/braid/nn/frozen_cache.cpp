#include "braid/nn/frozen_cache.h"

#include <torch/torch.h>

#include <vector>

namespace braid::nn {

namespace {

// the bytes of row i's valid input (see the header)
std::string row_key(const torch::Tensor& data, const torch::Tensor& lengths, int64_t i) {
  auto row = data[i];
  if (lengths.defined() && row.dim() >= 1) {
    const int64_t n = std::min<int64_t>(lengths[i].item<int64_t>(), row.size(0));
    row = row.narrow(0, 0, std::max<int64_t>(n, 0));
  }
  row = row.contiguous();
  std::string key(reinterpret_cast<const char*>(row.data_ptr()), row.numel() * row.element_size());
  key.append(reinterpret_cast<const char*>(row.sizes().data()), row.dim() * sizeof(int64_t));  // shape too
  return key;
}

}  // namespace

void FrozenFeatureCache::clear() {
  map_.clear();
  bytes_ = hits_ = misses_ = 0;
}

torch::Tensor FrozenFeatureCache::forward(EncoderImpl& enc, const ModalityBatch& mb) {
  torch::NoGradGuard ng;
  if (!mb.data.defined() || max_bytes_ <= 0) return enc.forward(mb);
  const auto data = mb.data.to(torch::kCPU);
  const auto lengths = mb.lengths.defined() ? mb.lengths.to(torch::kCPU) : torch::Tensor();
  const auto present = mb.present.to(torch::kCPU).to(torch::kBool);
  const int64_t B = data.size(0);
  std::vector<std::string> keys(B);
  std::vector<const torch::Tensor*> hit(B, nullptr);  // stored vector of each hit row (element pointers
                                                      // stay valid while misses are inserted below)
  std::vector<int64_t> miss;
  for (int64_t i = 0; i < B; ++i) {
    if (!present[i].item<bool>()) continue;  // absent: zeros, computed with the misses
    keys[i] = row_key(data, lengths, i);
    auto it = map_.find(keys[i]);
    if (it != map_.end()) hit[i] = &it->second, ++hits_;
    else miss.push_back(i);
  }
  misses_ += static_cast<int64_t>(miss.size());
  torch::Tensor fresh;  // encoder output of the rows not in the cache, in `miss` order
  if (!miss.empty()) {
    auto idx = torch::tensor(miss, torch::kLong).to(mb.data.device());
    ModalityBatch sub{mb.data.index_select(0, idx), mb.lengths.defined() ? mb.lengths.index_select(0, idx) : torch::Tensor(),
                      mb.present.index_select(0, idx)};
    fresh = enc.forward(sub);
  }
  // every row from the cache or `fresh`; absent rows stay zero
  const int64_t D = enc.out_dim();
  auto out_opts = fresh.defined() ? fresh.options() : torch::TensorOptions().device(mb.present.device());
  if (!fresh.defined() && !map_.empty()) out_opts = out_opts.dtype(map_.begin()->second.dtype());
  auto out = torch::zeros({B, D}, out_opts);
  std::vector<int64_t> hit_rows;
  std::vector<torch::Tensor> hit_vecs;
  for (int64_t i = 0; i < B; ++i)
    if (hit[i]) hit_rows.push_back(i), hit_vecs.push_back(*hit[i]);
  if (fresh.defined()) {
    auto fresh_cpu = fresh.to(torch::kCPU);
    for (size_t j = 0; j < miss.size(); ++j) {
      const int64_t i = miss[j];
      auto v = fresh_cpu[static_cast<int64_t>(j)].clone();
      const int64_t cost = static_cast<int64_t>(keys[i].size()) + v.numel() * v.element_size();
      if (!keys[i].empty() && bytes_ + cost <= max_bytes_ && map_.emplace(keys[i], v).second) bytes_ += cost;
    }
    out.index_copy_(0, torch::tensor(miss, torch::kLong).to(out.device()), fresh);
  }
  if (!hit_rows.empty())
    out.index_copy_(0, torch::tensor(hit_rows, torch::kLong).to(out.device()),
                    torch::stack(hit_vecs).to(out.device(), out.scalar_type()));
  return out;
}

}  // namespace braid::nn
