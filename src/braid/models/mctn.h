// braid/models/mctn.h — "mctn": the Multimodal Cyclic Translation Network (Pham et al. 2019,
// "Found in Translation", https://arxiv.org/abs/1812.07809) for one source and one target modality.
//
//   model: {name: mctn, modalities: [image, audio], source: image, target: audio,
//           sequences: {image: {name: image_rows}}, hidden: 64, steps: 28,
//           translation_weight: 1.0, cycle_weight: 1.0, head: {hidden: [64], dropout: 0.1}}
//
// The source's sequence front-end (nn/sequence.h) is resampled to T = `steps` steps by
// nearest-step indexing (nn::resample_nearest) and read by a GRU encoder, states E [B, T, hidden].
//   task:        the encoder's final state -> MLP head -> outputs (only the source is read).
//   translation: a GRU decoder (initial state: the encoder's final state; input at step t: E_t)
//                -> Linear regresses the target's raw frames (nn::raw_frames, resampled to T).
//   cycle:       a second GRU decoder (zero initial state) reads the translated sequence
//                -> Linear regresses the source's raw frames.
// Raw frames (image rows, log-mel frames, series frames) are regressed rather than learned
// features, which a front-end could shrink to zero; text therefore cannot be the target. A text
// source has no raw frames either: its cycle regresses the source's token embeddings, detached.
//
// Training loss = task + translation_weight·MSE(translation) + cycle_weight·MSE(cycle): the model
// interface returns only the task outputs, so after a forward in training mode
// `auxiliary_loss()` returns the weighted translation + cycle MSE (the trainer adds it to the
// task loss). The MSE is the mean over steps and frame values of the rows that have the source
// (cycle) or both modalities (translation). In eval mode the target is never read (it may be
// missing from the batch) and `auxiliary_loss()` is undefined.
#pragma once

#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/sequence.h"

namespace braid::models {

struct MCTNOptions {
  std::string source;               // modality read at test time (required)
  std::string target;               // modality the decoder regresses during training (required; not text)
  int64_t hidden = 64;              // GRU width of the encoder and both decoders
  int64_t layers = 1;               // stacked GRU layers of each
  int64_t steps = 32;               // common length T of the source and target sequences
  double translation_weight = 1.0;  // λ_t
  double cycle_weight = 1.0;        // λ_c
  std::vector<int64_t> head_hidden{64};  // `head.hidden`: hidden widths of the MLP head
  double head_dropout = 0.1;             // `head.dropout`
  static MCTNOptions from_config(const Config& c);
};

class MCTNImpl : public ModelImpl {
 public:
  MCTNImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  // λ_t·translation + λ_c·cycle of the last forward in training mode; undefined otherwise.
  torch::Tensor auxiliary_loss() override { return aux_; }
  // The unweighted MSEs of the last forward in training mode (undefined otherwise).
  const torch::Tensor& translation_loss() const { return translation_; }
  const torch::Tensor& cycle_loss() const { return cycle_; }
  MCTNOptions options;

 private:
  nn::EncoderContext src_ctx_, tgt_ctx_;
  nn::SequencePtr seq_;
  torch::nn::GRU encoder_{nullptr}, decoder_{nullptr}, cycle_decoder_{nullptr};
  torch::nn::Linear to_target_{nullptr}, to_source_{nullptr};
  nn::MLP head_{nullptr};
  torch::Tensor aux_, translation_, cycle_;
};

}  // namespace braid::models
