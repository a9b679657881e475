// nn::augment_images and image_cnn's `augment` (training-time image augmentation).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/batch.h"
#include "braid/core/config.h"
#include "braid/nn/encoder.h"
#include "braid/nn/image_augment.h"

using braid::Config;
using braid::nn::ImageAugmentOptions;

namespace {

ImageAugmentOptions opts(const std::string& yaml) {
  return ImageAugmentOptions::from_config(Config::from_string(yaml, "enc.yaml"));
}

std::string error_of(const std::string& yaml) {
  try {
    opts(yaml);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// an image_cnn encoder from its recipe section, its weights drawn after torch::manual_seed(seed)
braid::nn::EncoderPtr image_cnn(const std::string& yaml, uint64_t seed) {
  braid::nn::EncoderContext ctx;
  ctx.modality = "image";
  torch::manual_seed(seed);
  return braid::nn::encoder_registry().make(Config::from_string(yaml, "enc.yaml"), ctx);
}

braid::ModalityBatch batch(const torch::Tensor& x) {
  return {x, torch::Tensor(), torch::ones({x.size(0)}, torch::kBool)};
}

}  // namespace

// Off by default: the batch comes back unchanged; flip 1 mirrors every image left-right;
// grayscale 1 puts the luma in all three channels.
TEST(ImageAugment, FlipAndGrayscaleDoWhatTheySay) {
  torch::manual_seed(0);
  auto x = torch::randn({4, 3, 8, 8});
  EXPECT_TRUE(torch::equal(braid::nn::augment_images(x, opts("{name: image_cnn}")), x));
  EXPECT_TRUE(torch::equal(braid::nn::augment_images(x, opts("{augment: {flip: 1}}")), x.flip({3})));
  auto g = braid::nn::augment_images(x, opts("{augment: {grayscale: 1}}"));
  auto luma = x.select(1, 0) * 0.299 + x.select(1, 1) * 0.587 + x.select(1, 2) * 0.114;
  for (int c = 0; c < 3; ++c) EXPECT_LT((g.select(1, c) - luma).abs().max().item<double>(), 1e-6);
  // probability 0.5: some images flipped, some not, each either itself or its mirror
  auto big = torch::randn({64, 3, 4, 4});
  auto half = braid::nn::augment_images(big, opts("{augment: {flip: 0.5}}"));
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const bool same = torch::equal(half[i], big[i]), mirrored = torch::equal(half[i], big[i].flip({2}));
    EXPECT_TRUE(same || mirrored) << i;
    flipped += mirrored;
  }
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
}

// Shift moves the content by at most `shift` pixels in each direction and repeats the border: one
// bright pixel in the middle of a flat image stays one bright pixel, within the shift window.
TEST(ImageAugment, ShiftTranslatesWithinTheWindow) {
  torch::manual_seed(1);
  auto x = torch::zeros({32, 3, 16, 16});
  x.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), 8, 8}, 1.0);
  auto y = braid::nn::augment_images(x, opts("{augment: {shift: 3}}"));
  ASSERT_EQ(y.sizes(), x.sizes());
  std::set<std::pair<int64_t, int64_t>> places;
  for (int64_t i = 0; i < 32; ++i) {
    auto nz = y[i][0].nonzero();
    ASSERT_EQ(nz.size(0), 1) << i;
    const int64_t r = nz[0][0].item<int64_t>(), c = nz[0][1].item<int64_t>();
    EXPECT_LE(std::abs(r - 8), 3);
    EXPECT_LE(std::abs(c - 8), 3);
    places.insert({r, c});
  }
  EXPECT_GT(places.size(), 5u);  // it does move
  // a flat image stays flat (the border is repeated, not zero-filled)
  auto flat = torch::full({2, 3, 8, 8}, 0.7);
  EXPECT_LT((braid::nn::augment_images(flat, opts("{augment: {shift: 4}}")) - 0.7).abs().max().item<double>(), 1e-6);
}

// Scale zooms about the centre within [1 - scale, 1 + scale]: a centred bright square of side 8 on a
// dark 32 px image keeps its centre, and its area (the sum of the bilinear result) stays within the
// zoom window and varies between images. Rotate moves an off-centre dot along its circle about the
// centre. A flat image stays flat under both (the border is repeated).
TEST(ImageAugment, ScaleAndRotateResampleAboutTheCentre) {
  using torch::indexing::Slice;
  torch::manual_seed(3);
  auto x = torch::zeros({16, 3, 32, 32});
  x.index_put_({Slice(), Slice(), Slice(12, 20), Slice(12, 20)}, 1.0);
  auto y = braid::nn::augment_images(x, opts("{augment: {scale: 0.5}}"));
  ASSERT_EQ(y.sizes(), x.sizes());
  auto area = y.select(1, 0).sum({1, 2});  // 64 at zoom 1
  EXPECT_GE(area.min().item<double>(), 64 * 0.5 * 0.5 - 2);
  EXPECT_LE(area.max().item<double>(), 64 * 1.5 * 1.5 + 2);
  EXPECT_GT((area.max() - area.min()).item<double>(), 10) << "the zoom does not vary";
  auto rows = torch::arange(32, torch::kFloat).view({1, 32, 1}), cols = torch::arange(32, torch::kFloat).view({1, 1, 32});
  auto w = y.select(1, 0);
  EXPECT_LT(((w * rows).sum({1, 2}) / area - 15.5).abs().max().item<double>(), 0.05);  // centre of mass
  EXPECT_LT(((w * cols).sum({1, 2}) / area - 15.5).abs().max().item<double>(), 0.05);

  auto dot = torch::zeros({16, 3, 32, 32});
  dot.index_put_({Slice(), Slice(), Slice(15, 17), Slice(23, 25)}, 1.0);  // centre (15.5, 23.5): radius 8
  auto r = braid::nn::augment_images(dot, opts("{augment: {rotate: 90}}")).select(1, 0);
  auto mass = r.sum({1, 2});
  auto cy = (r * rows).sum({1, 2}) / mass - 15.5, cx = (r * cols).sum({1, 2}) / mass - 15.5;
  auto radius = (cy * cy + cx * cx).sqrt();
  EXPECT_LT((radius - 8).abs().max().item<double>(), 0.5);
  EXPECT_GT(cy.abs().max().item<double>(), 2) << "the dot does not move";

  auto flat = torch::full({2, 3, 8, 8}, 0.7);
  EXPECT_LT((braid::nn::augment_images(flat, opts("{augment: {scale: 0.3, rotate: 30}}")) - 0.7).abs().max().item<double>(),
            1e-6);
}

// image_cnn augments in training only: in evaluation the output is the plain encoder's; in training
// with flip 1 it equals the same weights reading the mirrored batch.
TEST(ImageAugment, ImageCnnAugmentsOnlyWhenTraining) {
  auto aug = image_cnn("{name: image_cnn, channels: [4], dim: 3, augment: {flip: 1}}", 2);
  auto plain = image_cnn("{name: image_cnn, channels: [4], dim: 3}", 2);
  auto x = torch::randn({5, 3, 8, 8});
  auto mb = batch(x), mirrored = batch(x.flip({3}));
  aug->eval();
  plain->eval();
  EXPECT_LT((aug->forward(mb) - plain->forward(mb)).abs().max().item<double>(), 1e-6);
  aug->train();
  plain->train();
  EXPECT_LT((aug->forward(mb) - plain->forward(mirrored)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((aug->forward(mb) - plain->forward(mb)).abs().max().item<double>(), 1e-4);
}

// tta_flip: in evaluation the output is the mean of the plain encoder's outputs for the image and its
// mirror (the head after pooling is linear), so an image and its mirror encode alike; training ignores it.
TEST(ImageAugment, ImageCnnTtaFlipAveragesTheMirror) {
  auto tta = image_cnn("{name: image_cnn, channels: [4, 8], dim: 3, tta_flip: true}", 4);
  auto plain = image_cnn("{name: image_cnn, channels: [4, 8], dim: 3}", 4);
  auto x = torch::randn({5, 3, 8, 8});
  auto mb = batch(x), mirrored = batch(x.flip({3}));
  tta->eval();
  plain->eval();
  auto want = (plain->forward(mb) + plain->forward(mirrored)) * 0.5;
  EXPECT_LT((tta->forward(mb) - want).abs().max().item<double>(), 1e-5);
  EXPECT_LT((tta->forward(mb) - tta->forward(mirrored)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((plain->forward(mb) - want).abs().max().item<double>(), 1e-4);
  tta->train();
  plain->train();
  EXPECT_LT((tta->forward(mb) - plain->forward(mb)).abs().max().item<double>(), 1e-5);
}

// Bad values name the file and the key.
TEST(ImageAugment, BadValuesNameTheKey) {
  auto e = error_of("{augment: {flip: 1.5}}");
  EXPECT_NE(e.find("enc.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("augment.flip"), std::string::npos) << e;
  e = error_of("{augment: {shift: -1}}");
  EXPECT_NE(e.find("augment.shift"), std::string::npos) << e;
  e = error_of("{augment: {grayscale: 2}}");
  EXPECT_NE(e.find("augment.grayscale"), std::string::npos) << e;
  e = error_of("{augment: {scale: 1}}");
  EXPECT_NE(e.find("augment.scale"), std::string::npos) << e;
  e = error_of("{augment: {rotate: -5}}");
  EXPECT_NE(e.find("augment.rotate"), std::string::npos) << e;
  e = error_of("{augment: {flipp: 0.5}}");
  EXPECT_NE(e.find("flipp"), std::string::npos) << e;
}
