// braid/nn/encoder.h — the encoder interface and its registry.
//
// An encoder maps one modality of a batch to a vector per sample: [B, out_dim()].
// Rows whose modality is absent come out as zeros. Encoders are built by name from a
// recipe map (`{name: image_cnn, dim: 128, ...}`); the registry lists the names.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "braid/core/registry.h"
#include "braid/core/batch.h"

namespace braid::nn {

// Facts about the data an encoder needs at construction.
struct EncoderContext {
  std::string modality;          // image, audio, text, series
  int64_t vocab_size = 0;        // text
  int64_t image_size = 0;        // image side in pixels
  int64_t n_mels = 0;            // audio
  int64_t series_channels = 0;   // series
  bool channels_last = false;    // conv stacks on CPU in the channels-last layout (recipe `channels_last`)
  std::vector<double> image_mean, image_std;  // per-channel normalization of the image tensors (data.image)
};

class EncoderImpl : public torch::nn::Module {
 public:
  // [B, out_dim()] features; absent rows are zero.
  torch::Tensor forward(const ModalityBatch& mb);
  int64_t out_dim() const { return out_dim_; }

 protected:
  // Features for every row of a batch whose data tensor is defined.
  virtual torch::Tensor encode(const ModalityBatch& mb) = 0;
  int64_t out_dim_ = 0;
};

using EncoderPtr = std::shared_ptr<EncoderImpl>;
using EncoderRegistry = Registry<EncoderPtr, const EncoderContext&>;
const EncoderRegistry& encoder_registry();

}  // namespace braid::nn
