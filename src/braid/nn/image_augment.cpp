#include "braid/nn/image_augment.h"

#include <torch/torch.h>

#include "braid/core/error.h"

namespace braid::nn {

ImageAugmentOptions ImageAugmentOptions::from_config(const Config& encoder) {
  ImageAugmentOptions o;
  if (!encoder.has("augment")) return o;
  const auto a = encoder.at("augment");
  o.flip = a.get<double>("flip", o.flip);
  o.shift = a.get<int64_t>("shift", o.shift);
  o.grayscale = a.get<double>("grayscale", o.grayscale);
  o.scale = a.get<double>("scale", o.scale);
  o.rotate = a.get<double>("rotate", o.rotate);
  BRAID_INPUT_CHECK(o.flip >= 0 && o.flip <= 1, "{}: recipe key '{}' must be a probability in [0, 1], got {}",
                    a.origin(), a.full("flip"), o.flip);
  BRAID_INPUT_CHECK(o.grayscale >= 0 && o.grayscale <= 1, "{}: recipe key '{}' must be a probability in [0, 1], got {}",
                    a.origin(), a.full("grayscale"), o.grayscale);
  BRAID_INPUT_CHECK(o.shift >= 0 && o.shift <= 64, "{}: recipe key '{}' must be pixels in [0, 64], got {}", a.origin(),
                    a.full("shift"), o.shift);
  BRAID_INPUT_CHECK(o.scale >= 0 && o.scale <= 0.9, "{}: recipe key '{}' must be a fraction in [0, 0.9], got {}",
                    a.origin(), a.full("scale"), o.scale);
  BRAID_INPUT_CHECK(o.rotate >= 0 && o.rotate <= 180, "{}: recipe key '{}' must be degrees in [0, 180], got {}",
                    a.origin(), a.full("rotate"), o.rotate);
  a.check_all_used();
  return o;
}

torch::Tensor augment_images(const torch::Tensor& x, const ImageAugmentOptions& o) {
  if (!o.any() || x.dim() != 4 || x.size(0) == 0) return x;
  torch::NoGradGuard ng;  // inputs: nothing to differentiate
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto y = x;
  auto draw = [&](double p) { return torch::rand({B, 1, 1, 1}, x.options().dtype(torch::kFloat)).lt(p); };
  if (o.flip > 0) y = torch::where(draw(o.flip), y.flip({3}), y);
  if (o.grayscale > 0 && y.size(1) == 3) {
    auto luma = (y.select(1, 0) * 0.299 + y.select(1, 1) * 0.587 + y.select(1, 2) * 0.114).unsqueeze(1);
    y = torch::where(draw(o.grayscale), luma.expand_as(y), y);
  }
  if (o.scale > 0 || o.rotate > 0) {  // one affine resampling per image about the centre
    auto f = x.options().dtype(torch::kFloat);
    auto zoom = 1.0 + (torch::rand({B}, f) * 2 - 1) * o.scale;                // content magnification
    auto angle = (torch::rand({B}, f) * 2 - 1) * (o.rotate * M_PI / 180.0);  // radians
    // affine_grid maps output to input coordinates: the inverse of "rotate by angle, magnify by zoom"
    auto c = angle.cos() / zoom, s = angle.sin() / zoom, z = torch::zeros({B}, f);
    auto theta = torch::stack({c, s, z, -s, c, z}, 1).view({B, 2, 3}).to(y.dtype());
    auto grid = torch::nn::functional::affine_grid(theta, y.sizes(), /*align_corners=*/false);
    y = torch::nn::functional::grid_sample(y, grid, torch::nn::functional::GridSampleFuncOptions()
                                                        .mode(torch::kBilinear)
                                                        .padding_mode(torch::kBorder)
                                                        .align_corners(false));
  }
  if (o.shift > 0) {
    const int64_t s = std::min<int64_t>(o.shift, std::min(H, W) - 1);
    auto padded = torch::replication_pad2d(y, {s, s, s, s});
    auto d = torch::randint(0, 2 * s + 1, {B, 2}, torch::kLong);  // offsets into the padded image
    auto acc = d.accessor<int64_t, 2>();
    std::vector<torch::Tensor> rows;
    rows.reserve(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i)
      rows.push_back(padded[i].narrow(1, acc[i][0], H).narrow(2, acc[i][1], W));
    y = torch::stack(rows);
  }
  return y.contiguous();
}

}  // namespace braid::nn
