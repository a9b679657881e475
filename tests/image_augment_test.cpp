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

// image_cnn augments in training only: in evaluation the output is the plain encoder's; in training
// with flip 1 it equals the same weights reading the mirrored batch.
TEST(ImageAugment, ImageCnnAugmentsOnlyWhenTraining) {
  braid::nn::EncoderContext ctx;
  ctx.modality = "image";
  torch::manual_seed(2);
  auto aug = braid::nn::encoder_registry().make(
      Config::from_string("{name: image_cnn, channels: [4], dim: 3, augment: {flip: 1}}", "a.yaml"), ctx);
  torch::manual_seed(2);
  auto plain = braid::nn::encoder_registry().make(Config::from_string("{name: image_cnn, channels: [4], dim: 3}", "p.yaml"), ctx);
  auto x = torch::randn({5, 3, 8, 8});
  braid::ModalityBatch mb{x, torch::Tensor(), torch::ones({5}, torch::kBool)};
  braid::ModalityBatch mirrored{x.flip({3}), torch::Tensor(), torch::ones({5}, torch::kBool)};
  aug->eval();
  plain->eval();
  EXPECT_LT((aug->forward(mb) - plain->forward(mb)).abs().max().item<double>(), 1e-6);
  aug->train();
  plain->train();
  EXPECT_LT((aug->forward(mb) - plain->forward(mirrored)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((aug->forward(mb) - plain->forward(mb)).abs().max().item<double>(), 1e-4);
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
  e = error_of("{augment: {flipp: 0.5}}");
  EXPECT_NE(e.find("flipp"), std::string::npos) << e;
}
