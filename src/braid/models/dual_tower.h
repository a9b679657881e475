// braid/models/dual_tower.h — dual / multi-tower alignment model (CLIP, SigLIP, DCCA, DeViSE, cycle).
//
// One encoder per modality, each followed by a projection (linear, or an MLP with `projection.hidden`)
// into a shared `embed_dim` space. The recipe picks the objective:
//   model: {name: dual_tower, modalities: [image, text, audio],
//           encoders: {image: {name: image_vit, ...}, text: {name: text_transformer, ...}, audio: {...}},
//           embed_dim: 128, projection: {hidden: []},
//           loss: clip,                  # clip | siglip | dcca | devise | cycle, or a list for a mix
//           loss_weights: {clip: 1.0},   # multi-task weights (missing = 1)
//           anchor: image,               # ImageBind-style: pairs (anchor, m); "" = every pair
//           label_smoothing: 0.0, chunk: 0, margin: 0.1, dcca_k: 0, dcca_r: 1e-4}
// Pair losses (clip, siglip, dcca, cycle) are averaged over the modality pairs. `devise` ranks every
// non-text modality's embedding against the text tower's embeddings of the class names (hinge,
// margin). `dcca` works on the raw projections and skips a batch with B <= embed_dim (loss 0).
// Cross-attention projectors: `projectors: {image: {name: qformer | perceiver, queries: 32, layers: 2}}`
// replaces that modality's pooled encoder output by learned queries reading the encoder's tokens
// (image_vit: class + patch tokens) before the projection. `freeze: [image]` keeps an encoder's
// weights fixed (no gradient, eval mode), and `init_from: RUN` loads every tensor of RUN's final model
// whose name and shape match (the trainer does it before step 1) — together: a frozen pretrained
// encoder with only the projector training. The trainer logs the trainable fraction.
// A learnable logit scale t (and SigLIP bias b) is shared by all pairs: init t = ln(1/0.07) for CLIP,
// t = ln 10 and b = −10 for SigLIP; exp(t) is clamped to 100 for CLIP.
#pragma once

#include <torch/nn/modules/container/modulelist.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/frozen_cache.h"
#include "braid/nn/projectors.h"

namespace braid::models {

class DualTowerImpl;

// One objective a dual_tower recipe may name in `model.loss` (`braid list losses`).
struct AlignLoss {
  // The rows one call scores: a modality pair's rows that have both (pairwise losses), or one
  // non-text modality's labelled rows (label losses).
  struct Rows {
    std::string a, b;             // the pair (label losses: the modality and "label")
    torch::Tensor ua, ub;         // L2-normalized embeddings [N, D] (label losses: ua only)
    torch::Tensor xa, xb;         // unnormalized projections [N, D] (losses with `raw` only)
    torch::Tensor labels;         // label losses: class ids [N]
  };
  std::string doc;
  bool pairwise = true;   // per modality pair; else per labelled non-text modality against the class names
  bool gathered = false;  // batch-coupled: in data-parallel training over every rank's rows (objectives/gather.h)
  bool raw = false;       // reads the unnormalized projections (never gathered)
  // Parameters or buffers the loss adds to the model (called once at construction); may be empty.
  std::function<void(DualTowerImpl&, const Config&, const ModelContext&)> setup;
  // The loss of one set of rows; undefined = this batch cannot score it (e.g. too few rows).
  std::function<torch::Tensor(DualTowerImpl&, const Rows&)> compute;
};

class DualTowerImpl : public ModelImpl {
 public:
  // Every objective `model.loss` may name, by name.
  static const std::map<std::string, AlignLoss>& losses();

  DualTowerImpl(const Config& cfg, const ModelContext& ctx);
  // The embedding of the first modality (align models have no task head).
  torch::Tensor forward(const Batch& batch) override;
  torch::Tensor objective(const Batch& batch) override;
  std::map<std::string, double> loss_terms() const override { return terms_; }
  Capabilities capabilities() const override { return {modalities_, false, 0}; }
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) override;

  // Unnormalized projection [B, embed_dim] of one modality (undefined when not a tower).
  torch::Tensor project(const std::string& modality, const ModalityBatch& mb);
  const std::vector<std::string>& modalities() const { return modalities_; }
  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }
  // Temperature 1 / exp(t) of the current logit scale.
  double temperature() const;
  // Keeps frozen encoders in eval mode.
  void train(bool on = true) override;

 private:
  torch::Tensor class_embeddings();
  std::vector<std::string> modalities_;
  std::map<std::string, nn::EncoderPtr> encoders_;
  std::map<std::string, nn::MLP> projections_;
  std::map<std::string, nn::Projector> projectors_;  // cross-attention over encoder tokens
  std::set<std::string> frozen_;
  std::map<std::string, nn::FrozenFeatureCache> frozen_cache_;  // frozen towers' outputs (nn/frozen_cache.h)
  std::vector<std::pair<std::string, std::string>> pairs_;
  std::vector<std::string> losses_;
  std::map<std::string, double> weights_;
  std::map<std::string, nn::MLP> translators_;  // cycle: "a>b" maps a's space to b's
  torch::Tensor logit_scale_, bias_;
  torch::Tensor class_text_, class_len_;
  int64_t embed_dim_ = 128, chunk_ = 0, dcca_k_ = 0;
  double smoothing_ = 0.0, margin_ = 0.1, dcca_r_ = 1e-4;
  std::map<std::string, double> terms_;
};

}  // namespace braid::models
