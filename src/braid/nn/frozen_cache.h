// braid/nn/frozen_cache.h — remembers a frozen encoder's output per input row.
//
// A frozen encoder (recipe `model.freeze`) runs in evaluation mode with fixed weights, so its output
// for a row depends only on that row's input. Training reads every sample once per epoch; with a
// large frozen tower (a pretrained BERT/MiniLM text encoder in front of a small head) the tower's
// forward is nearly all of the step. FrozenFeatureCache computes each distinct row once and returns
// the stored vector afterwards.
//
// Key: the bytes of the row's valid input — data[i, :lengths[i]] for sequence inputs (token ids,
// frames), the whole row otherwise — so the same text padded to different batch lengths is one entry.
// Rows whose modality is absent are not stored (they come out as zeros, as EncoderImpl::forward says).
// Memory is bounded: once the stored keys and vectors reach `max_bytes`, further rows are computed
// every time and not stored. Outputs carry no autograd history (the encoder is frozen).
// Not thread-safe: one cache per model, used by the thread that runs the model.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "braid/nn/encoder.h"

namespace braid::nn {

class FrozenFeatureCache {
 public:
  explicit FrozenFeatureCache(int64_t max_bytes = int64_t{256} << 20) : max_bytes_(max_bytes) {}

  // enc->forward(mb) for every row, [B, out_dim], computing only the rows not seen before.
  torch::Tensor forward(EncoderImpl& enc, const ModalityBatch& mb);

  void clear();
  int64_t entries() const { return static_cast<int64_t>(map_.size()); }
  int64_t bytes() const { return bytes_; }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  std::unordered_map<std::string, torch::Tensor> map_;  // row key -> [out_dim] vector (CPU)
  int64_t max_bytes_ = 0, bytes_ = 0, hits_ = 0, misses_ = 0;
};

}  // namespace braid::nn
