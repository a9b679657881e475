#include "braid/nn/frozen_cache.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <functional>
#include <list>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace braid::nn {

struct FrozenFeatureCache::Store {
  std::mutex mu;
  std::unordered_map<std::string, torch::Tensor> map;
  int64_t max_bytes = 0, bytes = 0;
};

namespace {

// the weights the encoder computes with: names, shapes, dtypes and bytes of every parameter and buffer
std::string weights_fingerprint(EncoderImpl& enc) {
  size_t h = 0;
  auto mix = [&h](std::string_view s) { h ^= std::hash<std::string_view>{}(s) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    mix(name);
    std::string shape(c.dtype().name());
    for (auto d : c.sizes()) shape += "," + std::to_string(d);
    mix(shape);
    mix(std::string_view(reinterpret_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
  };
  for (const auto& p : enc.named_parameters()) add(p.key(), p.value());
  for (const auto& b : enc.named_buffers()) add(b.key(), b.value());
  // CPU autocast changes the numbers (bf16 training, fp32 evaluation)
  const bool autocast = at::autocast::is_cpu_enabled();
  return std::to_string(h) + "/" + std::to_string(enc.out_dim()) +
         (autocast ? std::string("/autocast ") + c10::toString(at::autocast::get_autocast_cpu_dtype()) : "");
}

// process-wide stores by identity + weights; the most recently used ones are kept when their models go
std::shared_ptr<FrozenFeatureCache::Store> shared_store(const std::string& key, int64_t max_bytes) {
  static std::mutex mu;
  static std::list<std::pair<std::string, std::shared_ptr<FrozenFeatureCache::Store>>> lru;  // newest first
  constexpr size_t kKeep = 2;
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = lru.begin(); it != lru.end(); ++it)
    if (it->first == key) {
      lru.splice(lru.begin(), lru, it);
      return lru.front().second;
    }
  auto s = std::make_shared<FrozenFeatureCache::Store>();
  s->max_bytes = max_bytes;
  lru.emplace_front(key, s);
  if (lru.size() > kKeep) lru.pop_back();
  return s;
}

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
  store_.reset();
  hits_ = misses_ = 0;
}

int64_t FrozenFeatureCache::entries() const { return store_ ? static_cast<int64_t>(store_->map.size()) : 0; }
int64_t FrozenFeatureCache::bytes() const { return store_ ? store_->bytes : 0; }

torch::Tensor FrozenFeatureCache::forward(EncoderImpl& enc, const ModalityBatch& mb) {
  torch::NoGradGuard ng;
  if (!mb.data.defined() || max_bytes_ <= 0) return enc.forward(mb);
  if (!store_) {
    if (identity_.empty()) {
      store_ = std::make_shared<Store>();
      store_->max_bytes = max_bytes_;
    } else {
      store_ = shared_store(identity_ + "\n" + weights_fingerprint(enc), max_bytes_);
    }
  }
  std::lock_guard<std::mutex> lock(store_->mu);
  auto& map = store_->map;
  auto& bytes = store_->bytes;
  const int64_t max_bytes = store_->max_bytes;
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
    auto it = map.find(keys[i]);
    if (it != map.end()) hit[i] = &it->second, ++hits_;
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
  if (!fresh.defined() && !map.empty()) out_opts = out_opts.dtype(map.begin()->second.dtype());
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
      if (!keys[i].empty() && bytes + cost <= max_bytes && map.emplace(keys[i], v).second) bytes += cost;
    }
    out.index_copy_(0, torch::tensor(miss, torch::kLong).to(out.device()), fresh);
  }
  if (!hit_rows.empty())
    out.index_copy_(0, torch::tensor(hit_rows, torch::kLong).to(out.device()),
                    torch::stack(hit_vecs).to(out.device(), out.scalar_type()));
  return out;
}

}  // namespace braid::nn
