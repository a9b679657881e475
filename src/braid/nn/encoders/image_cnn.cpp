#include "braid/nn/encoders/image_cnn.h"

#include <torch/torch.h>

namespace braid::nn {

ImageCNNOptions ImageCNNOptions::from_config(const Config& c) {
  ImageCNNOptions o;
  o.channels = c.get<std::vector<int64_t>>("channels", o.channels);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.augment = ImageAugmentOptions::from_config(c);
  o.tta_flip = c.get<bool>("tta_flip", o.tta_flip);
  BRAID_INPUT_CHECK(!o.channels.empty() && o.dim > 0, "{}: '{}' needs channels and a positive dim", c.origin(), c.path());
  return o;
}

ImageCNNImpl::ImageCNNImpl(ImageCNNOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  convs_ = ConvStack(*this, 3, options.channels, ctx.channels_last);
  out_ = register_module("out", torch::nn::Linear(convs_.out_channels(), options.dim));
  out_dim_ = options.dim;
}

torch::Tensor ImageCNNImpl::encode(const ModalityBatch& mb) {
  if (!is_training() && options.tta_flip) {  // one pass over [x; mirror(x)], the two pooled halves averaged
    const int64_t B = mb.data.size(0);
    auto pooled = convs_.forward(torch::cat({mb.data, mb.data.flip({3})})).mean({2, 3});
    return out_->forward((pooled.narrow(0, 0, B) + pooled.narrow(0, B, B)) * 0.5);
  }
  auto in = is_training() ? augment_images(mb.data, options.augment) : mb.data;
  auto x = convs_.forward(in);  // [B, 3, H, W] -> [B, C, h, w]
  return out_->forward(x.mean({2, 3}));
}

}  // namespace braid::nn
