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
  int64_t outputs = 0;                                 // classes, or regression dimensions
  bool classify = true;                                // task: classification (else regression)
};

class ModelImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const data::Batch& batch) = 0;
  // Extra training loss of the last forward (translation, auxiliary heads, ...), added by the
  // trainer to the task loss; undefined when the model has none.
  virtual torch::Tensor auxiliary_loss() { return {}; }
};

using ModelPtr = std::shared_ptr<ModelImpl>;
using ModelRegistry = Registry<ModelPtr, const ModelContext&>;
const ModelRegistry& model_registry();

// Parameter count (all, or only those that require grad).
int64_t count_parameters(const torch::nn::Module& m, bool trainable_only = false);

}  // namespace braid::models
