// braid/nn/image_augment.h — random image augmentation inside an image encoder, training only.
//
// Recipe: `model.encoders.image.augment: {flip: 0.5, shift: 4, grayscale: 0.2}` (every key optional, all
// off by default). Applied per sample to the normalized [B, 3, H, W] batch when the encoder trains,
// never at evaluation, with the process's torch generator (the run's seed):
//   flip       probability of a left-right mirror
//   shift      translate by dx, dy drawn uniformly from [-shift, shift] pixels; the border pixels are
//              repeated into the uncovered edge (the emoji's white background stays white)
//   grayscale  probability of replacing the three channels by their luma 0.299 R + 0.587 G + 0.114 B
//              (computed on the normalized values: exact when the recipe's mean and std are equal
//              across channels, as every shipped recipe has them)
//   scale      zoom by a factor drawn uniformly from [1 - scale, 1 + scale] about the centre
//              (> 1 enlarges the content; bilinear, the border pixels repeated into the uncovered edge)
//   rotate     rotate by an angle drawn uniformly from [-rotate, rotate] degrees about the centre
//              (scale and rotate are one resampling; shift comes after, in whole pixels)
#pragma once

#include <torch/types.h>

#include "braid/core/config.h"

namespace braid::nn {

struct ImageAugmentOptions {
  double flip = 0.0;
  int64_t shift = 0;
  double grayscale = 0.0;
  double scale = 0.0;   // fraction in [0, 0.9]
  double rotate = 0.0;  // degrees in [0, 180]
  bool any() const { return flip > 0 || shift > 0 || grayscale > 0 || scale > 0 || rotate > 0; }
  // reads the optional `augment` map below an encoder's section; absent = no augmentation
  static ImageAugmentOptions from_config(const Config& encoder);
};

// x: [B, 3, H, W]; returns a new tensor (x itself when nothing applies)
torch::Tensor augment_images(const torch::Tensor& x, const ImageAugmentOptions& o);

}  // namespace braid::nn
