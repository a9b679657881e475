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
//
// Sharing: a cache built with an `identity` (the encoder's recipe section) joins a process-wide store
// for that identity and the encoder's weights (a hash of every parameter and buffer, taken at the
// first forward, when the trainer has loaded `model.init_from`). Two models of one process that
// freeze the same tower — the quickstart's text_pretrained and fused_pretrained rows, each run's
// evaluation after its training — then compute each text once. The two most recently used stores
// outlive their models; the memory bound is the store's (the first cache's `max_bytes`).
// A cache without an identity keeps its own store. The hit and miss counts are the cache's own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "braid/nn/encoder.h"

namespace braid::nn {

class FrozenFeatureCache {
 public:
  explicit FrozenFeatureCache(int64_t max_bytes = int64_t{256} << 20, std::string identity = "")
      : max_bytes_(max_bytes), identity_(std::move(identity)) {}

  // enc->forward(mb) for every row, [B, out_dim], computing only the rows not seen before.
  torch::Tensor forward(EncoderImpl& enc, const ModalityBatch& mb);

  void clear();  // forgets this cache's entries and counts (a shared store is left to the others)
  int64_t entries() const;
  int64_t bytes() const;
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

  struct Store;

 private:
  std::shared_ptr<Store> store_;  // row key -> [out_dim] vector (CPU); made at the first forward
  int64_t max_bytes_ = 0, hits_ = 0, misses_ = 0;
  std::string identity_;
};

}  // namespace braid::nn
