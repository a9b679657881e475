// Image decoding (stb_image), alpha compositing, antialiased resize and normalization.
#include "braid/data/image.h"

#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "braid/core/error.h"

#ifndef BRAID_STB_LIBRARY
#define STB_IMAGE_IMPLEMENTATION
#endif
#include <stb_image.h>

namespace braid::data {
namespace {

constexpr int64_t kMaxSide = 16384;                        // refuse larger images (decoder memory)
constexpr uint64_t kMaxFileBytes = uint64_t(1) << 30;      // 1 GiB: no real PNG/JPEG/BMP is larger

// Which of the formats we accept the leading bytes announce; "" when none.
// stb_image also knows TGA, whose header has no magic and would accept arbitrary bytes.
const char* sniff_format(const uint8_t* b, size_t n) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 8 && std::memcmp(b, png, 8) == 0) return "PNG";
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return "JPEG";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
  return "";
}

std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

}  // namespace

RawImage decode_image_memory(const uint8_t* bytes, size_t n, const std::string& name, double background) {
  BRAID_INPUT_CHECK(n > 0, "{}: empty file; expected a PNG/JPEG/BMP image", name);
  BRAID_INPUT_CHECK(n <= kMaxFileBytes && n <= size_t(INT32_MAX), "{}: file of {} bytes is too large for an image",
                    name, n);
  BRAID_INPUT_CHECK(std::isfinite(background) && background >= 0.0 && background <= 1.0,
                    "{}: background grey level {} is outside [0, 1]", name, background);
  const std::string fmt_name = sniff_format(bytes, n);
  BRAID_INPUT_CHECK(!fmt_name.empty(), "{}: not a PNG/JPEG/BMP image (unrecognised file signature)", name);

  // Check the dimensions the header claims before the decoder allocates anything.
  int w = 0, h = 0, comp = 0;
  const int len = static_cast<int>(n);
  if (!stbi_info_from_memory(bytes, len, &w, &h, &comp))
    input_error("{}: not a PNG/JPEG/BMP image (stb: {})", name, stb_reason());
  BRAID_INPUT_CHECK(w > 0 && h > 0 && w <= kMaxSide && h <= kMaxSide,
                    "{}: {} image of {}x{} pixels; expected 1..{} pixels on each side", name, fmt_name, w, h, kMaxSide);

  int w2 = 0, h2 = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(bytes, len, &w2, &h2, &comp, 4), stbi_image_free);
  if (!px) input_error("{}: not a PNG/JPEG/BMP image (stb: {})", name, stb_reason());
  BRAID_INPUT_CHECK(w2 == w && h2 == h, "{}: {} header says {}x{} but the decoder produced {}x{}", name, fmt_name, w,
                    h, w2, h2);

  RawImage img;
  img.width = w;
  img.height = h;
  const size_t count = size_t(w) * size_t(h);
  img.rgb.resize(count * 3);
  const double bg = background * 255.0;
  const stbi_uc* src = px.get();
  uint8_t* dst = img.rgb.data();
  for (size_t i = 0; i < count; ++i, src += 4, dst += 3) {
    const uint8_t alpha = src[3];
    if (alpha == 255) {
      dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
      continue;
    }
    // out = round_half_up(rgb * a + bg * 255 * (1 - a)); scripts/make_goldens.py uses the same expression.
    const double a = alpha / 255.0;
    for (int c = 0; c < 3; ++c) {
      double v = std::floor(double(src[c]) * a + bg * (1.0 - a) + 0.5);
      dst[c] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
    }
  }
  return img;
}

RawImage decode_image_file(const std::string& path, double background) {
  namespace fs = std::filesystem;
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::is_regular_file(path, ec), "{}: no such image file; expected a PNG/JPEG/BMP image", path);
  const uint64_t size = fs::file_size(path, ec);
  BRAID_INPUT_CHECK(!ec, "{}: cannot read file size ({})", path, ec.message());
  BRAID_INPUT_CHECK(size > 0, "{}: empty file; expected a PNG/JPEG/BMP image", path);
  BRAID_INPUT_CHECK(size <= kMaxFileBytes, "{}: file of {} bytes is too large for an image", path, size);
  std::vector<uint8_t> bytes(size);
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file ({})", path, std::strerror(errno));
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  BRAID_INPUT_CHECK(f.gcount() == static_cast<std::streamsize>(size), "{}: short read ({} of {} bytes)", path,
                    f.gcount(), size);
  return decode_image_memory(bytes.data(), bytes.size(), path, background);
}

torch::Tensor resize_image(const RawImage& img, int64_t height, int64_t width) {
  TORCH_CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width * img.height * 3),
              "resize_image: RawImage of ", img.width, "x", img.height, " holds ", img.rgb.size(),
              " bytes; expected width*height*3");
  BRAID_INPUT_CHECK(height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide,
                    "resize_image: target size {}x{}; expected 1..{} on each side", height, width, kMaxSide);
  // [H, W, 3] uint8 -> [1, 3, H, W] float32 in [0, 1]
  auto hwc = torch::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, torch::kUInt8);
  auto x = hwc.permute({2, 0, 1}).to(torch::kFloat32).div_(255.0).unsqueeze(0).contiguous();
  if (height == img.height && width == img.width) return x.squeeze(0);
  namespace F = torch::nn::functional;
  auto y = F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{height, width})
                                 .mode(torch::kBilinear)
                                 .align_corners(false)
                                 .antialias(true));
  return y.squeeze(0).contiguous();  // [3, height, width]
}

torch::Tensor normalize_image(const torch::Tensor& chw, const ImageOptions& opt) {
  TORCH_CHECK(chw.dim() == 3 && chw.size(0) == 3, "normalize_image: expected a [3, H, W] tensor, got ", chw.sizes());
  BRAID_INPUT_CHECK(opt.mean.size() == 3 && opt.std.size() == 3,
                    "image options: mean and std need 3 values each, got {} and {}", opt.mean.size(), opt.std.size());
  for (double s : opt.std)
    BRAID_INPUT_CHECK(std::isfinite(s) && s > 0.0, "image options: std value {} must be positive", s);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  auto mean = torch::tensor(opt.mean, opts).to(chw.scalar_type()).view({3, 1, 1});
  auto std = torch::tensor(opt.std, opts).to(chw.scalar_type()).view({3, 1, 1});
  return (chw - mean) / std;
}

torch::Tensor load_image(const std::string& path, const ImageOptions& opt) {
  BRAID_INPUT_CHECK(opt.size > 0 && opt.size <= kMaxSide, "{}: image size {} must be in 1..{}", path, opt.size,
                    kMaxSide);
  RawImage img = decode_image_file(path, opt.background);
  return normalize_image(resize_image(img, opt.size, opt.size), opt);
}

}  // namespace braid::data
