// braid/models/model.h — the model interface and its registry.
//
// A model reads a Batch and returns task outputs [B, outputs] (class logits or regression
// values). Models are named in recipes (`model: {name: fusion_classifier, ...}`).
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/registry.h"
#include "braid/data/batch.h"
#include "braid/nn/encoder.h"

namespace braid::models {

struct ModelContext {
  std::vector<std::string> modalities;                 // inputs the model reads
  std::map<std::string, nn::EncoderContext> encoders;  // per-modality data facts
  int64_t outputs = 0;                                 // classes, or regression dimensions (0 for align)
  bool classify = true;                                // task: classification (else regression)
  bool align = false;                                  // task: align (self-supervised; objective())
  // align runs with labels and text: the class names as token ids [K, L] (0 = pad) and their
  // lengths [K], in class-id order (DeViSE ranks against their text embeddings); else undefined.
  torch::Tensor class_text, class_text_lengths;
};

class ModelImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const data::Batch& batch) = 0;
  // Extra training loss of the last forward (translation, auxiliary heads, ...), added by the
  // trainer to the task loss; undefined when the model has none.
  virtual torch::Tensor auxiliary_loss() { return {}; }

  // Self-supervised models (recipe `task: align`): the training objective of one batch, which the
  // trainer minimizes instead of a supervised loss. The default rejects the task.
  virtual torch::Tensor objective(const data::Batch& batch);
  // Named terms of the last objective (logged with each training step), e.g. {"clip": 2.1}.
  virtual std::map<std::string, double> loss_terms() const { return {}; }
  // Models with a shared embedding space: L2-normalized [B, D] vectors of one modality, used by
  // retrieval, zero-shot and `braid embed`. Undefined when the model does not embed `modality`.
  virtual torch::Tensor embed(const std::string& modality, const data::ModalityBatch& mb) { return {}; }
};

using ModelPtr = std::shared_ptr<ModelImpl>;
using ModelRegistry = Registry<ModelPtr, const ModelContext&>;
const ModelRegistry& model_registry();

// Parameter count (all, or only those that require grad).
int64_t count_parameters(const torch::nn::Module& m, bool trainable_only = false);

}  // namespace braid::models
