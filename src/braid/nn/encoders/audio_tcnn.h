// braid/nn/encoders/audio_tcnn.h — 1-D CNN over time on log-mel frames (mel bands as channels).
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "braid/core/config.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct AudioTCNNOptions {
  std::vector<int64_t> channels{128, 128};  // Conv1d(k)-BN-ReLU blocks; 2x max pooling over time after each but the last
  int64_t kernel = 5;                       // temporal kernel (odd; "same" padding)
  int64_t dim = 128;                        // output width
  std::string pool = "max";                 // max | mean: pooling over the valid frames
  // SpecAugment-style training-only augmentation (none at evaluation):
  int64_t freq_mask = 0;   // zero one band of up to this many mel bins per sample (0 = off)
  int64_t time_shift = 0;  // roll each sample's valid frames by up to ± this many frames (0 = off)
  static AudioTCNNOptions from_config(const Config& c);
};

// [B, n_mels, T] -> (augment) -> blocks -> pooling over valid frames -> Linear -> [B, dim].
// The mel bands are the input channels of the first convolution, so every filter sees the whole
// spectrum at once and slides over time only (a keyword-spotting layout).
class AudioTCNNImpl : public EncoderImpl {
 public:
  AudioTCNNImpl(AudioTCNNOptions o, const EncoderContext& ctx);
  AudioTCNNOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  torch::Tensor augment(torch::Tensor x, const torch::Tensor& lengths) const;
  torch::nn::ModuleList convs_{nullptr}, norms_{nullptr};
  torch::nn::Linear out_{nullptr};
};

}  // namespace braid::nn
