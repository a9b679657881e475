// braid/nn/encoders/audio_cnn.h — CNN over log-mel spectrograms.
#pragma once

#include "braid/nn/conv.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct AudioCNNOptions {
  std::vector<int64_t> channels{16, 32, 64};  // conv-BN-ReLU-maxpool(2x2) blocks
  int64_t dim = 128;                          // output width
  static AudioCNNOptions from_config(const Config& c);
};

// [B, n_mels, T] as a 1-channel image -> blocks -> mean over mel, masked mean over valid time -> Linear.
class AudioCNNImpl : public EncoderImpl {
 public:
  AudioCNNImpl(AudioCNNOptions o, const EncoderContext& ctx);
  AudioCNNOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  ConvStack convs_;
  torch::nn::Linear out_{nullptr};
};

}  // namespace braid::nn
