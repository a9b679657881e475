// braid/models/mfn.h — "mfn": the Memory Fusion Network (Zadeh et al. 2018,
// https://arxiv.org/abs/1802.00927) over the recipe's modalities.
//
//   model: {name: mfn, modalities: [image, audio],
//           sequences: {image: {name: image_rows}, audio: {name: audio_frames, stride: 2}},
//           hidden: 32, memory: 64, attn_hidden: 64, steps: 32, dropout: 0.1,
//           head: {hidden: [64], dropout: 0.1}}
//
// Per modality m: a sequence front-end (nn/sequence.h), then the row's valid steps are
// resampled to a common length T = `steps` by nearest-step indexing (output step t reads input
// step ⌊(t + ½)·L_m / T⌋ of the row's L_m valid steps; see nn::resample_nearest) — so unaligned
// sequences of any lengths become aligned, without padding inside the recurrence. A system of
// LSTM cells (one per modality, width `hidden`) runs over t = 1..T; at each step the memories of
// all modalities at t−1 and t feed the delta-memory attention and the multi-view gated memory u_t
// (nn/temporal/memory.h). Output [h_T^1; …; h_T^M; u_T] -> MLP head.
// Absent modalities: the row's LSTM state of that modality is held at zero (so its h_T and its
// share of ĉ are zero); the memory still runs on the present modalities.
#pragma once

#include <torch/nn/modules/rnn.h>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/sequence.h"
#include "braid/nn/temporal/memory.h"

namespace braid::models {

struct MFNOptions {
  int64_t hidden = 32;        // LSTM width per modality
  int64_t memory = 64;        // width of the multi-view gated memory u
  int64_t attn_hidden = 64;   // hidden width of D_a, D_u, D_1, D_2
  int64_t steps = 32;         // common length T every modality is resampled to
  bool gate_memory = true;    // gates read [a; u_{t-1}] as in the reference code (false: a only)
  double dropout = 0.1;       // dropout inside D_a, D_u, D_1, D_2
  std::vector<int64_t> head_hidden{64};  // `head.hidden`: hidden widths of the MLP head
  double head_dropout = 0.1;             // `head.dropout`
  static MFNOptions from_config(const Config& c);
};

class MFNImpl : public ModelImpl {
 public:
  MFNImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  // [h_T^1; …; h_T^M; u_T] before the head: [B, M·hidden + memory].
  torch::Tensor encode(const Batch& batch);
  const std::vector<std::string>& modalities() const { return modalities_; }
  MFNOptions options;

 private:
  std::vector<std::string> modalities_;
  std::vector<nn::SequencePtr> seqs_;
  std::vector<torch::nn::LSTMCell> cells_;
  nn::DeltaMemoryAttention attn_{nullptr};
  nn::GatedMemory memory_{nullptr};
  nn::MLP head_{nullptr};
};

}  // namespace braid::models
