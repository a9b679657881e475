// braid/data/image.h — image decoding and preprocessing (PNG, JPEG, BMP via stb_image).
//
// All functions treat the file as untrusted: a missing, empty, truncated or non-image file is an
// InputError "<path>: <what was expected>", never a crash. The format is recognised by its signature
// (PNG, JPEG, BMP only), and images wider or taller than 16384 pixels are refused before decoding.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace braid::data {

struct ImageOptions {
  int64_t size = 32;                                  // output is size x size (square resize, antialiased)
  std::vector<double> mean{0.5, 0.5, 0.5};            // per-channel mean subtracted after scaling to [0,1]
  std::vector<double> std{0.5, 0.5, 0.5};             // per-channel std divided after the mean
  double background = 1.0;                            // alpha is composited over this grey level in [0,1]
};

// Decoded 8-bit RGB pixels, row-major HxWx3, alpha already composited over `background`:
// out = floor(rgb * a + background * 255 * (1 - a) + 0.5) with a = alpha / 255 (grey and 16-bit images are
// converted to 8-bit RGBA by stb_image first). `name` labels the buffer in errors.
struct RawImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

RawImage decode_image_file(const std::string& path, double background = 1.0);
RawImage decode_image_memory(const uint8_t* bytes, size_t n, const std::string& name, double background = 1.0);

// [3, H, W] float32 in [0, 1] resized with antialiased bilinear filtering (equal to
// torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)).
torch::Tensor resize_image(const RawImage& img, int64_t height, int64_t width);

// (x - mean) / std per channel on a [3, H, W] tensor.
torch::Tensor normalize_image(const torch::Tensor& chw, const ImageOptions& opt);

// decode -> resize -> normalize: [3, size, size] float32.
torch::Tensor load_image(const std::string& path, const ImageOptions& opt);

// Write 8-bit RGB or grey pixels as PNG (used by dataset builders and tests).
void write_png(const std::string& path, int64_t width, int64_t height, int64_t channels, const uint8_t* pixels);

}  // namespace braid::data
