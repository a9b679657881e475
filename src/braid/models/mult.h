// braid/models/mult.h — "mult": the Multimodal Transformer (Tsai et al. 2019,
// https://arxiv.org/abs/1906.00295) over unaligned sequences of the recipe's modalities.
//
//   model: {name: mult, modalities: [image, audio],
//           sequences: {image: {name: image_rows}, audio: {name: audio_frames, stride: 2}},
//           dim: 32, heads: 4, layers: 2, self_layers: 2, dropout: 0.1,
//           head: {hidden: [64], dropout: 0.1}}
//
// Per modality m: a sequence front-end (nn/sequence.h) -> Conv1d(kernel proj_kernel, no bias) to
// `dim` -> ×√dim + sinusoidal positions -> dropout. For every target α and source β ≠ α a stack of
// `layers` cross-modal layers (nn/temporal/crossmodal.h: Q from α, K/V from β, β's padding
// masked); the M−1 outputs for α are concatenated along features ([B, T_α, (M−1)·dim]), run
// through `self_layers` pre-norm self-attention blocks (α's padding masked) and a LayerNorm, and
// the step at α's last valid position is kept. The M vectors are concatenated -> MLP head.
// With a single modality the self-attention stack reads the modality's own sequence.
// Absent modalities: a target row whose modality is absent contributes zeros; a source that is
// absent for a row is fully masked and its attention output is zero.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/normalization.h>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/sequence.h"
#include "braid/nn/temporal/crossmodal.h"

namespace braid::models {

struct MulTOptions {
  int64_t dim = 32;          // width d of every modality after projection (paper: 30)
  int64_t heads = 4;         // attention heads of the cross-modal and self-attention layers
  int64_t layers = 2;        // cross-modal layers per (target, source) pair (paper: 5)
  int64_t self_layers = 2;   // self-attention blocks per target after concatenation (paper code: 3)
  int64_t proj_kernel = 1;   // kernel of the per-modality Conv1d projection (odd; reference code: 1)
  double dropout = 0.1;      // embedding, attention-output and feed-forward dropout
  std::vector<int64_t> head_hidden{64};  // `head.hidden`: hidden widths of the MLP head
  double head_dropout = 0.1;             // `head.dropout`
  static MulTOptions from_config(const Config& c);
};

class MulTImpl : public ModelImpl {
 public:
  MulTImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  // Per-target vectors before the head ([B, width] each, zero rows where the target is absent),
  // in `modalities()` order.
  std::vector<torch::Tensor> encode(const Batch& batch);
  const std::vector<std::string>& modalities() const { return modalities_; }
  MulTOptions options;

 private:
  std::vector<std::string> modalities_;
  std::vector<nn::SequencePtr> seqs_;
  std::vector<torch::nn::Conv1d> projs_;
  std::vector<std::vector<nn::CrossModalStack>> cross_;  // [target][source], source ≠ target
  std::vector<torch::nn::ModuleList> selfs_;
  std::vector<torch::nn::LayerNorm> norms_;
  torch::nn::Dropout drop_{nullptr};
  nn::MLP head_{nullptr};
};

}  // namespace braid::models
