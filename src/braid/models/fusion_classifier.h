// braid/models/fusion_classifier.h — one encoder per modality, a fusion, and an MLP head.
//
// With one modality it is a unimodal model; with several, a fused one. The recipe names the
// encoders per modality, the fusion and the head:
//   model: {name: fusion_classifier, modalities: [image, text],
//           encoders: {image: {name: image_cnn}, text: {name: text_bow}},
//           fusion: {name: concat}, head: {hidden: [128], dropout: 0.2}}
#pragma once

#include <torch/nn/modules/container/moduledict.h>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/fusion.h"

namespace braid::models {

class FusionClassifierImpl : public ModelImpl {
 public:
  FusionClassifierImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const data::Batch& batch) override;
  // Per-modality features before fusion, in `modalities()` order.
  std::vector<torch::Tensor> encode(const data::Batch& batch);
  const std::vector<std::string>& modalities() const { return modalities_; }

 private:
  std::vector<std::string> modalities_;
  std::vector<nn::EncoderPtr> encoders_;
  nn::FusionPtr fusion_;
  nn::MLP head_{nullptr};
};

}  // namespace braid::models
