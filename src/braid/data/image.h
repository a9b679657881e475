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
  int64_t size = 32;                                  // output is size x size (the model's input side)
  std::string resize = "square";                      // square: the whole image to size x size; shortest: the
                                                      // shorter side to `resize_size` (aspect kept), then the
                                                      // centre size x size crop (HF CLIPImageProcessor)
  int64_t resize_size = 0;                            // shortest: the shorter side after resizing (0 = size)
  std::string filter = "bilinear";                    // bilinear: antialiased, on float pixels (torch interpolate);
                                                      // bicubic: PIL's antialiased bicubic on 8-bit pixels (HF
                                                      // image processors, resample=3)
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

// 8-bit RGB resized as Pillow's Image.resize(..., Image.BICUBIC) does it (a = -0.5, support widened by the
// downscale factor, coefficients in 22-bit fixed point, the horizontal pass rounded to 8 bits before the
// vertical one): pixel for pixel equal to PIL, hence to HF image processors.
RawImage resize_bicubic_u8(const RawImage& img, int64_t height, int64_t width);

// The [3, size, size] float32 pixels in [0, 1] of `img` per `opt` (resize, filter, centre crop), before
// normalization: the one geometric path of training, `braid embed` and the server.
torch::Tensor fit_image(const RawImage& img, const ImageOptions& opt);

// (x - mean) / std per channel on a [3, H, W] tensor.
torch::Tensor normalize_image(const torch::Tensor& chw, const ImageOptions& opt);

// decode -> fit_image -> normalize: [3, size, size] float32.
torch::Tensor load_image(const std::string& path, const ImageOptions& opt);

// Write 8-bit RGB or grey pixels as PNG (used by dataset builders and tests).
void write_png(const std::string& path, int64_t width, int64_t height, int64_t channels, const uint8_t* pixels);

// The PNG file bytes (8-bit RGB) of a [3, H, W] float image in [0, 1] (values outside are clamped; any
// device and floating dtype). InputError for another shape or an empty image.
std::string encode_png(const torch::Tensor& chw01);

// Images [N, 3, H, W] laid out as one [3, rows*H + (rows-1)*gap, cols*W + (cols-1)*gap] image, row-major,
// `cols` per row (cols > N: N), `gap` pixels of white (1.0) between cells and in the unused cells of the
// last row. InputError for another shape, N = 0, cols < 1 or gap < 0.
torch::Tensor image_grid(const torch::Tensor& nchw, int64_t cols, int64_t gap = 2);

}  // namespace braid::data
