// braid/models/fusion_classifier.h — one encoder per modality, a fusion, and a task head.
//
// With one modality it is a unimodal model; with several, a fused one. The recipe names the
// encoders per modality, the fusion and the head:
//   model: {name: fusion_classifier, modalities: [image, text],
//           encoders: {image: {name: image_cnn}, text: {name: text_bow}},
//           fusion: {name: concat}, head: {hidden: [128], dropout: 0.2},
//           modality_dropout: 0.0, aux_heads: 0.0}
//
// Feature-level fusions (nn/fusion.h registry) combine the encoder vectors before one head.
// Decision-level fusions — fusion names `late_mean`, `late_weighted`, `late_poe` — give each
// modality its own head and combine the predictions: the mean of the class probabilities,
// a learned softmax-weighted mean of them, or a product of experts (sum of log-probabilities;
// for regression the mean of the per-modality outputs). An absent modality's expert is dropped.
// `late_conf` (fusion: {name: late_conf, power: 1.0}) weights each expert's log-probabilities
// per sample by its confidence 1 − H/log K raised to `power` (nn/fusion/late_confidence.h): an
// expert unsure of a sample — an input style it never saw — gives way to a sure one. With
// `calibrate: temperature` each expert's logits are divided by a temperature fitted on the
// validation split after training (models/calibrated.h; buffer `expert_temperature`, 1 while
// training), so an expert that is surer than it is right on held-out data weighs less; with
// `calibrate: rank` the confidence is ranked among the expert's validation confidences instead;
// with `calibrate: shift` (shift_k: 5, shift_alpha: 0.1) each expert's weight is also scaled by
// how typical the sample's encoder features are among the validation ones (k-NN distance; buffers
// `expert_shift_ref_<m>`, `expert_shift_n`, `expert_shift_dist`), so an expert whose input is
// unlike anything held-in (an image style never seen) gives way even when it is sure. `floor: f`
// (default 0) mixes each expert's distribution with the uniform one, (1 − f) p + f / K, before
// fusing: a product of experts in which no expert can veto a class outright.
//
// Robust training: `modality_dropout` p hides each present modality of a training sample with
// probability p (never all of them); `aux_heads` λ > 0 adds per-modality heads whose
// cross-entropy, weighted by λ, joins the training loss (classification).
//
// Pretrained encoders: `freeze: [text]` keeps the named modalities' encoders fixed (no gradient,
// always in evaluation mode; load them with `init_from: RUN`, e.g. an imported MiniLM). A frozen
// encoder's output per distinct input is computed once and remembered (nn/frozen_cache.h), up to
// `frozen_cache_mb` MiB per encoder (default 256; 0 = recompute every time).
#pragma once

#include <torch/nn/modules/container/modulelist.h>

#include "braid/core/config.h"
#include "braid/models/calibrated.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/frozen_cache.h"
#include "braid/nn/fusion.h"

namespace braid::models {

class FusionClassifierImpl : public ModelImpl, public Calibrated {
 public:
  FusionClassifierImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  torch::Tensor auxiliary_loss() override { return aux_loss_; }
  void train(bool on = true) override;  // frozen encoders stay in evaluation mode
  // late_conf with `calibrate: temperature`: fits each expert's temperature on `val` (rows that have
  // its modality); "" for every other recipe.
  std::string calibrate(const std::vector<Batch>& val) override;
  bool calibrates() const override {
    return expert_temperature_.defined() || conf_ranks_.defined() || shift_n_.defined();
  }
  // Per-modality features before fusion, in `modalities()` order, and the [B, M] presence.
  std::vector<torch::Tensor> encode(const Batch& batch, torch::Tensor* present = nullptr);
  const std::vector<std::string>& modalities() const { return modalities_; }

 private:
  enum class Late { None, Mean, Weighted, Poe, Conf };
  torch::Tensor combine_late(const std::vector<torch::Tensor>& feats, const torch::Tensor& present);
  torch::Tensor expert_logits(const std::vector<torch::Tensor>& feats);  // [B, M, K], temperatures applied
  std::vector<std::string> modalities_;
  std::vector<nn::EncoderPtr> encoders_;
  std::map<size_t, nn::FrozenFeatureCache> frozen_;  // encoder index -> its cache (model.freeze)
  nn::FusionPtr fusion_;
  nn::MLP head_{nullptr};
  torch::nn::ModuleList modality_heads_{nullptr};  // late fusion experts or auxiliary heads
  torch::Tensor late_weights_;                     // learned logits of late_weighted
  Late late_ = Late::None;
  bool classify_ = true;
  double modality_dropout_ = 0.0, aux_weight_ = 0.0;
  double conf_power_ = 1.0;  // late_conf: exponent of the per-sample confidence
  double conf_floor_ = 0.0;  // late_conf: share of the uniform distribution mixed into each expert
  torch::Tensor expert_temperature_;  // late_conf, calibrate: temperature: [M] buffer (else undefined)
  torch::Tensor conf_ranks_;          // late_conf, calibrate: rank: [M, kRankQ] validation confidence quantiles
  // late_conf, calibrate: shift: per expert, up to kShiftRef validation features [kShiftRef, D_m]
  // (the first shift_n_[m] rows used; 0 = not calibrated) and kRankQ quantiles of their
  // leave-one-out k-NN distances [M, kRankQ]
  std::vector<torch::Tensor> shift_ref_;
  torch::Tensor shift_n_, shift_dist_;
  int64_t shift_k_ = 5;
  double shift_alpha_ = 0.1;
  torch::Tensor shift_trust_of(const std::vector<torch::Tensor>& feats);  // [B, M] (undefined: not calibrated)
  static constexpr int64_t kRankQ = 101, kShiftRef = 1024;
  torch::Tensor aux_loss_;
};

}  // namespace braid::models
