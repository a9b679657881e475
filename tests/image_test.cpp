// Image decoding and preprocessing against goldens from scripts/make_goldens.py.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <vector>

#include "braid/core/error.h"
#include "braid/data/image.h"
#include "braid/data/npy.h"
#include "test_util.h"
#include "braid/core/fs.h"

namespace {

namespace bd = braid::data;
using braid::test::AllClose;
using braid::test::broken;
using braid::test::ExpectInputError;
using braid::test::golden;


// Shapes equal and max |got - want| <= atol; the message names the worst element.

torch::Tensor rgb_tensor(const bd::RawImage& img) {  // [H, W, 3] uint8
  return torch::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, torch::kUInt8).clone();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::string temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("braid_image_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(ImageDecode, PngOpaquePixelsEqualRawRgba) {
  auto rgba = bd::read_npy(golden("image_rgba.npy"));  // [17, 23, 4] uint8, written by the hand-made PNG encoder
  auto img = bd::decode_image_file(golden("image.png"), 1.0);
  ASSERT_EQ(img.width, 23);
  ASSERT_EQ(img.height, 17);
  auto got = rgb_tensor(img);
  auto opaque = rgba.select(2, 3).eq(255);  // [17, 23]
  ASSERT_GT(opaque.sum().item<int64_t>(), 15);
  auto want_rgb = rgba.narrow(2, 0, 3);
  auto mismatch = (got.ne(want_rgb).any(2)).logical_and(opaque).sum().item<int64_t>();
  EXPECT_EQ(mismatch, 0) << "opaque pixels differ from the raw RGBA data";
  // fully transparent pixels are exactly the background
  auto transparent = rgba.select(2, 3).eq(0);
  ASSERT_GT(transparent.sum().item<int64_t>(), 10);
  EXPECT_EQ((got.ne(255).any(2)).logical_and(transparent).sum().item<int64_t>(), 0);
}

TEST(ImageDecode, PngCompositesAlphaExactly) {
  auto on_white = bd::decode_image_file(golden("image.png"), 1.0);
  EXPECT_TRUE(AllClose(rgb_tensor(on_white), bd::read_npy(golden("image_rgb_bg1.npy")), 0.0, "composite bg=1"));
  auto on_grey = bd::decode_image_file(golden("image.png"), 0.5);
  EXPECT_TRUE(AllClose(rgb_tensor(on_grey), bd::read_npy(golden("image_rgb_bg05.npy")), 0.0, "composite bg=0.5"));
  // 0.5 * 255 = 127.5 rounds half up to 128 where alpha is 0
  auto transparent = bd::read_npy(golden("image_rgba.npy")).select(2, 3).eq(0);
  EXPECT_EQ((rgb_tensor(on_grey).ne(128).any(2)).logical_and(transparent).sum().item<int64_t>(), 0);
}

TEST(ImageDecode, MemoryEqualsFile) {
  auto bytes = read_bytes(golden("image.png"));
  auto a = bd::decode_image_memory(bytes.data(), bytes.size(), "mem.png", 0.5);
  auto b = bd::decode_image_file(golden("image.png"), 0.5);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.rgb, b.rgb);
}

TEST(ImageDecode, Bmp24Bit) {
  auto img = bd::decode_image_file(golden("image.bmp"));
  EXPECT_TRUE(AllClose(rgb_tensor(img), bd::read_npy(golden("image_bmp_rgb.npy")), 0.0, "bmp pixels"));
}

TEST(ImageDecode, WritePngRoundTrip) {
  const std::string dir = temp_dir();
  torch::manual_seed(3);
  auto rgb = torch::randint(0, 256, {5, 7, 3}, torch::kInt64).to(torch::kUInt8).contiguous();
  bd::write_png(dir + "/rgb.png", 7, 5, 3, rgb.data_ptr<uint8_t>());
  EXPECT_TRUE(AllClose(rgb_tensor(bd::decode_image_file(dir + "/rgb.png")), rgb, 0.0, "png rgb round trip"));
  auto grey = torch::randint(0, 256, {4, 6}, torch::kInt64).to(torch::kUInt8).contiguous();
  bd::write_png(dir + "/grey.png", 6, 4, 1, grey.data_ptr<uint8_t>());
  auto g = rgb_tensor(bd::decode_image_file(dir + "/grey.png"));
  EXPECT_TRUE(AllClose(g, grey.unsqueeze(2).expand({4, 6, 3}), 0.0, "png grey round trip"));
  braid::remove_tree(dir);
}

TEST(ImageResize, MatchesTorchAntialiasedBilinear) {
  auto img = bd::decode_image_file(golden("image.png"), 1.0);
  EXPECT_TRUE(AllClose(bd::resize_image(img, 8, 8), bd::read_npy(golden("image_resize_8x8.npy")), 1e-5, "8x8"));
  EXPECT_TRUE(AllClose(bd::resize_image(img, 32, 32), bd::read_npy(golden("image_resize_32x32.npy")), 1e-5, "32x32"));
  EXPECT_TRUE(AllClose(bd::resize_image(img, 12, 40), bd::read_npy(golden("image_resize_12x40.npy")), 1e-5, "12x40"));
}

TEST(ImageResize, SameSizeIsScaledPixels) {
  auto img = bd::decode_image_file(golden("image.png"), 1.0);
  auto x = bd::resize_image(img, img.height, img.width);
  auto want = rgb_tensor(img).permute({2, 0, 1}).to(torch::kFloat32) / 255.0;
  EXPECT_TRUE(AllClose(x, want, 1e-7, "identity resize"));
}

TEST(ImageLoad, ResizeAndNormalize) {
  bd::ImageOptions opt;
  opt.size = 16;
  opt.mean = {0.485, 0.456, 0.406};
  opt.std = {0.229, 0.224, 0.225};
  opt.background = 0.5;
  auto x = bd::load_image(golden("image.png"), opt);
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(AllClose(x, bd::read_npy(golden("image_load_16.npy")), 1e-5, "load_image 16x16 normalized"));
}

TEST(ImageLoad, NormalizeUsesMeanAndStd) {
  bd::ImageOptions opt;  // mean 0.5, std 0.5: [0, 1] -> [-1, 1]
  auto x = torch::stack({torch::zeros({2, 2}), torch::ones({2, 2}), torch::full({2, 2}, 0.5)});
  auto y = bd::normalize_image(x, opt);
  EXPECT_TRUE(AllClose(y, torch::stack({-torch::ones({2, 2}), torch::ones({2, 2}), torch::zeros({2, 2})}), 1e-7,
                       "normalize"));
  opt.std = {0.5, 0.0, 0.5};
  EXPECT_THROW(bd::normalize_image(x, opt), braid::InputError);
}

TEST(ImageBroken, EachBadFileIsAnInputError) {
  ExpectInputError([] { bd::decode_image_file(broken("truncated.png")); }, "truncated.png", "PNG");
  ExpectInputError([] { bd::decode_image_file(broken("not_an_image.png")); }, "not_an_image.png",
                   "not a PNG/JPEG/BMP image");
  ExpectInputError([] { bd::decode_image_file(broken("empty.png")); }, "empty.png", "empty");
  ExpectInputError([] { bd::decode_image_file(broken("huge.png")); }, "huge.png", "20000x8");
  ExpectInputError([] { bd::decode_image_file(broken("does_not_exist.png")); }, "does_not_exist.png");
  bd::ImageOptions opt;
  ExpectInputError([&] { bd::load_image(broken("truncated.png"), opt); }, "truncated.png");
}

TEST(ImageBroken, DecompressionBombIsRefusedFromTheHeader) {
  // A PNG header declaring 16384x16384 1-bit grey (within the per-side limit): decoded, it would be
  // 1 GB of RGBA and 3 GB of floats. The pixel-count check refuses it before any decoding.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                              0, 0, 0x40, 0, 0, 0, 0x40, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  ExpectInputError([&] { bd::decode_image_memory(png.data(), png.size(), "bomb.png"); }, "bomb.png",
                   "16384x16384 = 268435456 pixels");
}

TEST(ImageBroken, MemoryBuffersAreChecked) {
  auto bytes = read_bytes(golden("image.png"));
  // every prefix of a valid PNG is rejected cleanly (no crash, no partial image)
  for (size_t n : {size_t(0), size_t(1), size_t(8), size_t(30), size_t(100), bytes.size() / 2, bytes.size() - 13}) {
    ExpectInputError([&] { bd::decode_image_memory(bytes.data(), n, "cut.png"); }, "cut.png");
  }
  // a flipped byte inside the compressed data
  auto bad = bytes;
  bad[bad.size() / 2] ^= 0x5a;
  bad[bad.size() / 2 + 1] ^= 0xa5;
  try {
    auto img = bd::decode_image_memory(bad.data(), bad.size(), "flipped.png");
    EXPECT_EQ(img.rgb.size(), size_t(23 * 17 * 3));  // zlib may not notice; then the size is still right
  } catch (const braid::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("flipped.png"), std::string::npos);
  }
  ExpectInputError([&] { bd::decode_image_memory(bytes.data(), bytes.size(), "bg.png", 1.5); }, "bg.png",
                   "background");
}

}  // namespace
