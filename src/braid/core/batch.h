// braid/core/batch.h — the models' input contract: per-modality tensors with masks. data produces
// it (the loader and collate), nn and models consume it; it lives in core so neither depends on the other.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace braid {

// One modality of a batch of B samples.
//   image:  data [B, 3, H, W] float
//   audio:  data [B, n_mels, T] float (log-mel, padded with 0 after per-utterance normalization)
//   text:   data [B, L] int64 token ids (0 = padding)
//   series: data [B, T, C] float (padded with 0)
// lengths [B] int64: valid steps along the sequence axis (1 for images, 0 when absent).
// present [B] bool: whether the sample has this modality; absent rows hold zeros.
struct ModalityBatch {
  torch::Tensor data, lengths, present;
  ModalityBatch to(const torch::Device& d, bool non_blocking = false) const;
};

struct Batch {
  std::vector<int64_t> index;                // sample indices in the manifest
  std::map<std::string, ModalityBatch> mods; // by modality name
  torch::Tensor labels;                      // [B] int64 class ids (-1 = none), or undefined
  torch::Tensor targets;                     // [B, D] float regression targets, or undefined
  int64_t size() const { return static_cast<int64_t>(index.size()); }
  Batch to(const torch::Device& d) const;  // asynchronous (non_blocking) from pinned memory
  Batch pinned() const;                    // a copy in page-locked memory (needs a CUDA build)
};


}  // namespace braid
