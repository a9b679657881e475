// Image decoding (stb_image), alpha compositing, antialiased resize and normalization.
#include "braid/data/image.h"

#include <torch/nn/functional/upsampling.h>
#include <fmt/ranges.h>
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
#include <stb_image_write.h>  // declarations only (the implementation: data/write.cpp)

namespace braid::data {
namespace {

constexpr int64_t kMaxSide = 16384;                        // refuse larger images (decoder memory)
constexpr int64_t kMaxPixels = int64_t(1) << 26;           // 67 M pixels (any real photo): a small file declaring
                                                           // 16384x16384 would decode to 4 GB of RGBA and floats
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

// stb's reason is meant to be a static string, but the fuzzer found inputs after which it is not text
// ("\f\n..."; fuzz/regressions/image/): printable ASCII only, at most 80 characters, so the error stays one line.
std::string stb_reason() {
  const char* r = stbi_failure_reason();
  std::string s;
  for (; r && *r && s.size() < 80; ++r)
    if (*r >= 0x20 && *r < 0x7f) s += *r;
  return s.empty() ? "unknown error" : s;
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
  BRAID_INPUT_CHECK(int64_t(w) * h <= kMaxPixels, "{}: {} image of {}x{} = {} pixels; expected at most {}", name,
                    fmt_name, w, h, int64_t(w) * h, kMaxPixels);

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
  // alpha 0: rgb * 0 + bg * 1 is exactly bg, so the general expression below gives this value.
  const auto clear = static_cast<uint8_t>(std::clamp(std::floor(bg + 0.5), 0.0, 255.0));
  const stbi_uc* src = px.get();
  uint8_t* dst = img.rgb.data();
  for (size_t i = 0; i < count; ++i, src += 4, dst += 3) {
    const uint8_t alpha = src[3];
    if (alpha == 255) {
      dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
      continue;
    }
    if (alpha == 0) {
      dst[0] = dst[1] = dst[2] = clear;
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

namespace {

// Antialiased bilinear weights along one axis, as torch's interpolate(mode="bilinear", antialias=True,
// align_corners=False) computes them (PIL's convolution resampling): output i centred at s·(i + ½)
// (s = in/out) takes inputs [start, start + size) with triangle-filter weights of half-width max(s, 1),
// normalized to sum 1.
struct AxisWeights {
  int64_t taps = 0;
  std::vector<int64_t> start, size;
  std::vector<float> w;  // [out, taps]
};

AxisWeights aa_weights(int64_t in, int64_t out) {
  const double scale = double(in) / double(out);
  const double support = scale >= 1.0 ? scale : 1.0;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  AxisWeights a;
  a.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.start.resize(size_t(out));
  a.size.resize(size_t(out));
  a.w.assign(size_t(out * a.taps), 0.0f);
  std::vector<double> tmp(size_t(a.taps));
  for (int64_t i = 0; i < out; ++i) {
    const double center = scale * (double(i) + 0.5);
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t n = std::min<int64_t>(std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in) - lo, a.taps);
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const double x = (double(j + lo) - center + 0.5) * invscale;
      tmp[size_t(j)] = std::max(0.0, 1.0 - std::abs(x));
      total += tmp[size_t(j)];
    }
    for (int64_t j = 0; j < n; ++j) a.w[size_t(i * a.taps + j)] = total > 0 ? float(tmp[size_t(j)] / total) : 0.0f;
    a.start[size_t(i)] = lo;
    a.size[size_t(i)] = std::max<int64_t>(n, 0);
  }
  return a;
}

}  // namespace

torch::Tensor resize_image(const RawImage& img, int64_t height, int64_t width) {
  TORCH_CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width * img.height * 3),
              "resize_image: RawImage of ", img.width, "x", img.height, " holds ", img.rgb.size(),
              " bytes; expected width*height*3");
  BRAID_INPUT_CHECK(height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide,
                    "resize_image: target size {}x{}; expected 1..{} on each side", height, width, kMaxSide);
  // Separable: rows first (along the width), then columns, each skipped when that side keeps its size; float
  // arithmetic on the [0, 1] values, like torch's kernel. Written out (not torch::interpolate) because for the
  // small images of a dataset the op overhead dominated the work.
  const int64_t H = img.height, W = img.width;
  const uint8_t* px = img.rgb.data();
  std::vector<float> src(size_t(3 * H * W));  // [3, H, W] in [0, 1]
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) src[size_t((c * H + y) * W + x)] = float(px[(y * W + x) * 3 + c]) / 255.0f;
  std::vector<float> rows;  // [3, H, width]
  if (width != W) {
    const auto a = aa_weights(W, width);
    rows.assign(size_t(3 * H * width), 0.0f);
    for (int64_t cy = 0; cy < 3 * H; ++cy) {
      const float* in = src.data() + cy * W;
      float* o = rows.data() + cy * width;
      for (int64_t i = 0; i < width; ++i) {
        const float* w = a.w.data() + i * a.taps;
        const float* p = in + a.start[size_t(i)];
        float acc = 0.0f;
        for (int64_t j = 0; j < a.size[size_t(i)]; ++j) acc += p[j] * w[j];
        o[i] = acc;
      }
    }
  } else {
    rows.swap(src);
  }
  auto out = torch::empty({3, height, width}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  if (height != H) {
    const auto a = aa_weights(H, height);
    for (int64_t c = 0; c < 3; ++c) {
      const float* in = rows.data() + c * H * width;
      for (int64_t i = 0; i < height; ++i) {
        const float* w = a.w.data() + i * a.taps;
        float* dst = o + (c * height + i) * width;
        for (int64_t x = 0; x < width; ++x) dst[x] = 0.0f;
        for (int64_t j = 0; j < a.size[size_t(i)]; ++j) {
          const float* r = in + (a.start[size_t(i)] + j) * width;
          const float wj = w[j];
          for (int64_t x = 0; x < width; ++x) dst[x] += r[x] * wj;
        }
      }
    }
  } else {
    std::copy(rows.begin(), rows.end(), o);
  }
  return out;  // [3, height, width]
}

namespace {

// Pillow's bicubic kernel (a = -0.5; libImaging/Resample.c).
double pil_bicubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit images

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis (the whole image as the box).
struct FixedWeights {
  int64_t taps = 0;
  std::vector<int64_t> start, size;
  std::vector<int32_t> k;  // [out, taps]
};

FixedWeights bicubic_weights(int64_t in, int64_t out) {
  const double scale = double(in) / double(out);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  FixedWeights a;
  a.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.start.resize(size_t(out));
  a.size.resize(size_t(out));
  a.k.assign(size_t(out * a.taps), 0);
  std::vector<double> tmp(size_t(a.taps));
  for (int64_t i = 0; i < out; ++i) {
    const double center = (double(i) + 0.5) * scale;
    int64_t lo = static_cast<int64_t>(center - support + 0.5);  // C truncation, as Pillow
    if (lo < 0) lo = 0;
    int64_t hi = static_cast<int64_t>(center + support + 0.5);
    if (hi > in) hi = in;
    const int64_t n = std::min(hi - lo, a.taps);
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      tmp[size_t(j)] = pil_bicubic((double(j + lo) - center + 0.5) / filterscale);
      total += tmp[size_t(j)];
    }
    for (int64_t j = 0; j < n; ++j) {
      const double w = total != 0.0 ? tmp[size_t(j)] / total : tmp[size_t(j)];
      const double f = w * double(1 << kPrecisionBits);
      a.k[size_t(i * a.taps + j)] = static_cast<int32_t>(w < 0 ? -0.5 + f : 0.5 + f);
    }
    a.start[size_t(i)] = lo;
    a.size[size_t(i)] = std::max<int64_t>(n, 0);
  }
  return a;
}

inline uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;  // arithmetic shift: floor, as Pillow's int
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// [3, H, W] float32 in [0, 1] of 8-bit pixels.
torch::Tensor to_float(const RawImage& img) {
  const int64_t H = img.height, W = img.width;
  auto out = torch::empty({3, H, W}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) o[(c * H + y) * W + x] = float(img.rgb[size_t((y * W + x) * 3 + c)]) / 255.0f;
  return out;
}

}  // namespace

RawImage resize_bicubic_u8(const RawImage& img, int64_t height, int64_t width) {
  TORCH_CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width * img.height * 3),
              "resize_bicubic_u8: RawImage of ", img.width, "x", img.height, " holds ", img.rgb.size(),
              " bytes; expected width*height*3");
  BRAID_INPUT_CHECK(height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide,
                    "resize_bicubic_u8: target size {}x{}; expected 1..{} on each side", height, width, kMaxSide);
  RawImage cur = img;
  if (width != cur.width) {  // horizontal pass first, rounded to 8 bits (Pillow's ImagingResampleInner)
    const auto a = bicubic_weights(cur.width, width);
    RawImage t{width, cur.height, std::vector<uint8_t>(size_t(width * cur.height * 3))};
    for (int64_t y = 0; y < cur.height; ++y)
      for (int64_t i = 0; i < width; ++i) {
        const int32_t* k = a.k.data() + i * a.taps;
        for (int64_t c = 0; c < 3; ++c) {
          int64_t acc = int64_t(1) << (kPrecisionBits - 1);
          const uint8_t* p = cur.rgb.data() + (y * cur.width + a.start[size_t(i)]) * 3 + c;
          for (int64_t j = 0; j < a.size[size_t(i)]; ++j) acc += int64_t(p[j * 3]) * k[j];
          t.rgb[size_t((y * width + i) * 3 + c)] = clip8(acc);
        }
      }
    cur = std::move(t);
  }
  if (height != cur.height) {
    const auto a = bicubic_weights(cur.height, height);
    RawImage t{cur.width, height, std::vector<uint8_t>(size_t(cur.width * height * 3))};
    const int64_t row = cur.width * 3;
    for (int64_t i = 0; i < height; ++i) {
      const int32_t* k = a.k.data() + i * a.taps;
      const uint8_t* base = cur.rgb.data() + a.start[size_t(i)] * row;
      for (int64_t x = 0; x < row; ++x) {
        int64_t acc = int64_t(1) << (kPrecisionBits - 1);
        for (int64_t j = 0; j < a.size[size_t(i)]; ++j) acc += int64_t(base[j * row + x]) * k[j];
        t.rgb[size_t(i * row + x)] = clip8(acc);
      }
    }
    cur = std::move(t);
  }
  return cur;
}

torch::Tensor fit_image(const RawImage& img, const ImageOptions& opt) {
  BRAID_INPUT_CHECK(opt.size > 0 && opt.size <= kMaxSide, "image options: size {} must be in 1..{}", opt.size,
                    kMaxSide);
  BRAID_INPUT_CHECK(opt.resize == "square" || opt.resize == "shortest",
                    "image options: resize '{}'; expected square or shortest", opt.resize);
  BRAID_INPUT_CHECK(opt.filter == "bilinear" || opt.filter == "bicubic",
                    "image options: filter '{}'; expected bilinear or bicubic", opt.filter);
  int64_t H = opt.size, W = opt.size;
  if (opt.resize == "shortest") {
    const int64_t s = opt.resize_size > 0 ? opt.resize_size : opt.size;
    BRAID_INPUT_CHECK(s >= opt.size && s <= kMaxSide, "image options: resize_size {} must be in {}..{} (size)", s,
                      opt.size, kMaxSide);
    // HF get_resize_output_image_size(default_to_square=False): the long side is int(s * long / short).
    const int64_t shorter = std::min(img.width, img.height), longer = std::max(img.width, img.height);
    const int64_t l = std::min<int64_t>(static_cast<int64_t>(double(s) * double(longer) / double(shorter)), kMaxSide);
    if (img.width <= img.height) {
      W = s;
      H = l;
    } else {
      H = s;
      W = l;
    }
  }
  torch::Tensor x;
  if (opt.filter == "bicubic")
    x = to_float(H == img.height && W == img.width ? img : resize_bicubic_u8(img, H, W));
  else
    x = resize_image(img, H, W);
  if (H == opt.size && W == opt.size) return x;
  const int64_t top = (H - opt.size) / 2, left = (W - opt.size) / 2;  // HF center_crop
  return x.slice(1, top, top + opt.size).slice(2, left, left + opt.size).contiguous();  // [3, size, size]
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

namespace {
void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}
}  // namespace

std::string encode_png(const torch::Tensor& chw01) {
  BRAID_INPUT_CHECK(chw01.dim() == 3 && chw01.size(0) == 3 && chw01.size(1) > 0 && chw01.size(2) > 0,
                    "encode_png: expected a [3, H, W] image, got {}", fmt::format("[{}]", fmt::join(chw01.sizes(), ", ")));
  BRAID_INPUT_CHECK(chw01.size(1) <= kMaxSide && chw01.size(2) <= kMaxSide,
                    "encode_png: image of {}x{}; expected at most {} on each side", chw01.size(1), chw01.size(2),
                    kMaxSide);
  BRAID_INPUT_CHECK(chw01.is_floating_point(), "encode_png: expected a floating-point image in [0, 1]");
  // [3, H, W] in [0, 1] -> [H, W, 3] bytes, rounded to nearest (NaN becomes 0)
  auto hwc = torch::nan_to_num(chw01.detach().to(torch::kCPU, torch::kFloat32), 0.0)
                 .clamp(0, 1)
                 .mul(255.0f)
                 .round()
                 .to(torch::kUInt8)
                 .permute({1, 2, 0})
                 .contiguous();
  const int H = static_cast<int>(hwc.size(0)), W = static_cast<int>(hwc.size(1));
  std::string out;
  const int ok = stbi_write_png_to_func(append_bytes, &out, W, H, 3, hwc.data_ptr<uint8_t>(), W * 3);
  if (!ok || out.empty()) throw std::runtime_error("encode_png: stb_image_write failed");
  return out;
}

torch::Tensor image_grid(const torch::Tensor& nchw, int64_t cols, int64_t gap) {
  BRAID_INPUT_CHECK(nchw.dim() == 4 && nchw.size(0) > 0 && nchw.size(1) == 3 && nchw.size(2) > 0 && nchw.size(3) > 0,
                    "image_grid: expected images [N, 3, H, W] with N >= 1, got {}", fmt::format("[{}]", fmt::join(nchw.sizes(), ", ")));
  BRAID_INPUT_CHECK(cols >= 1, "image_grid: cols must be >= 1, got {}", cols);
  BRAID_INPUT_CHECK(gap >= 0 && gap <= 1024, "image_grid: gap must be in 0..1024, got {}", gap);
  const int64_t n = nchw.size(0), H = nchw.size(2), W = nchw.size(3);
  const int64_t c = std::min(cols, n), rows = (n + c - 1) / c;
  auto grid = torch::ones({3, rows * H + (rows - 1) * gap, c * W + (c - 1) * gap}, nchw.options());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = (i / c) * (H + gap), x = (i % c) * (W + gap);
    grid.slice(1, y, y + H).slice(2, x, x + W).copy_(nchw[i]);
  }
  return grid;
}

torch::Tensor load_image(const std::string& path, const ImageOptions& opt) {
  BRAID_INPUT_CHECK(opt.size > 0 && opt.size <= kMaxSide, "{}: image size {} must be in 1..{}", path, opt.size,
                    kMaxSide);
  RawImage img = decode_image_file(path, opt.background);
  return normalize_image(fit_image(img, opt), opt);
}

}  // namespace braid::data
