// braid/nn/encoders/image_cnn.h — small convolutional image encoder.
#pragma once

#include "braid/nn/conv.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/encoder.h"
#include "braid/nn/image_augment.h"

namespace braid::nn {

struct ImageCNNOptions {
  std::vector<int64_t> channels{32, 64, 128};  // one conv-BN-ReLU-maxpool block per entry
  int64_t dim = 128;                           // output width
  ImageAugmentOptions augment;                 // training-time augmentation (nn/image_augment.h)
  bool tta_flip = false;                       // evaluation: mean of the pooled features of x and its mirror
  static ImageCNNOptions from_config(const Config& c);
};

// [B, 3, H, W] -> (augment, training only) -> blocks -> global average pool -> Linear -> [B, dim].
// With `tta_flip: true` evaluation pools the image and its left-right mirror and averages the two.
class ImageCNNImpl : public EncoderImpl {
 public:
  ImageCNNImpl(ImageCNNOptions o, const EncoderContext& ctx);
  ImageCNNOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  ConvStack convs_;
  torch::nn::Linear out_{nullptr};
};

}  // namespace braid::nn
