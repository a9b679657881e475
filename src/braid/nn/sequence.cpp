#include "braid/nn/sequence.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace braid::nn {

namespace {

// [B, T] float 0/1: step < length
torch::Tensor valid_steps(const torch::Tensor& lengths, int64_t T, torch::Dtype dt) {
  auto steps = torch::arange(T, lengths.options()).unsqueeze(0);
  return (steps < lengths.unsqueeze(1)).to(dt);
}

void check_odd_kernel(const Config& c, int64_t k) {
  BRAID_INPUT_CHECK(k > 0 && k % 2 == 1, "{}: recipe key '{}': expected a positive odd kernel, got {}", c.origin(),
                    c.full("kernel"), k);
}

}  // namespace

SequenceFeatures SequenceEncoderImpl::forward(const ModalityBatch& mb) {
  const int64_t B = mb.present.size(0);
  auto dev = mb.present.device();
  SequenceFeatures f;
  f.present = mb.present;
  if (!mb.data.defined()) {
    f.x = torch::zeros({B, 1, out_dim_}, torch::TensorOptions().device(dev));
    f.lengths = torch::zeros({B}, torch::TensorOptions().dtype(torch::kLong).device(dev));
    return f;
  }
  auto [x, len] = encode(mb);
  f.lengths = len * mb.present.to(len.dtype());
  f.x = x * valid_steps(f.lengths, x.size(1), x.scalar_type()).unsqueeze(-1);
  return f;
}

// ---------------------------------------------------------------- image_rows

ImageRowsOptions ImageRowsOptions::from_config(const Config& c) {
  ImageRowsOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.kernel = c.get<int64_t>("kernel", o.kernel);
  o.pool = c.get<int64_t>("pool", o.pool);
  BRAID_INPUT_CHECK(o.dim > 0 && o.pool > 0, "{}: '{}' needs a positive dim and pool", c.origin(), c.path());
  check_odd_kernel(c, o.kernel);
  return o;
}

ImageRowsImpl::ImageRowsImpl(ImageRowsOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.image_size > 0, "image_rows: unknown image size");
  const int64_t W = ctx.image_size / o.pool;
  TORCH_CHECK(W > 0, "image_rows: pool ", o.pool, " is larger than the image (", ctx.image_size, " px)");
  conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(3 * W, o.dim, o.kernel).padding(o.kernel / 2)));
  out_dim_ = o.dim;
}

std::pair<torch::Tensor, torch::Tensor> ImageRowsImpl::encode(const ModalityBatch& mb) {
  auto img = mb.data;  // [B, 3, H, W]
  if (options.pool > 1) img = torch::avg_pool2d(img, options.pool);
  const int64_t B = img.size(0), H = img.size(2), W = img.size(3);
  auto rows = img.permute({0, 1, 3, 2}).reshape({B, 3 * W, H});  // channels 3·W (c-major), steps H
  auto x = conv_->forward(rows).transpose(1, 2);                  // [B, H, dim]
  return {x, torch::full({B}, H, mb.present.options().dtype(torch::kLong))};
}

// ---------------------------------------------------------------- image_grid

ImageGridOptions ImageGridOptions::from_config(const Config& c) {
  ImageGridOptions o;
  o.channels = c.get<std::vector<int64_t>>("channels", o.channels);
  o.dim = c.get<int64_t>("dim", o.dim);
  BRAID_INPUT_CHECK(!o.channels.empty() && o.dim > 0, "{}: '{}' needs channels and a positive dim", c.origin(), c.path());
  return o;
}

ImageGridImpl::ImageGridImpl(ImageGridOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  convs_ = ConvStack(*this, 3, options.channels, ctx.channels_last);
  out_ = register_module("out", torch::nn::Linear(convs_.out_channels(), options.dim));
  out_dim_ = options.dim;
}

std::pair<torch::Tensor, torch::Tensor> ImageGridImpl::encode(const ModalityBatch& mb) {
  auto x = convs_.forward(mb.data);  // [B, 3, H, W] -> [B, C, h, w]
  const int64_t B = x.size(0), S = x.size(2) * x.size(3);
  auto steps = x.flatten(2).transpose(1, 2);  // [B, h·w, C], raster order
  return {out_->forward(steps), torch::full({B}, S, mb.present.options().dtype(torch::kLong))};
}

// ---------------------------------------------------------------- audio_frames / series_frames

FramesOptions FramesOptions::from_config(const Config& c) {
  FramesOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.kernel = c.get<int64_t>("kernel", o.kernel);
  o.stride = c.get<int64_t>("stride", o.stride);
  BRAID_INPUT_CHECK(o.dim > 0 && o.stride > 0, "{}: '{}' needs a positive dim and stride", c.origin(), c.path());
  check_odd_kernel(c, o.kernel);
  return o;
}

FramesImpl::FramesImpl(FramesOptions o, const EncoderContext& ctx) : options(o) {
  int64_t in = 0;
  if (ctx.modality == "audio") {
    in = ctx.n_mels;
  } else {
    channels_last_ = true;
    in = ctx.series_channels;
  }
  TORCH_CHECK(in > 0, "frames front-end: unknown channel count for '", ctx.modality, "'");
  conv_ = register_module(
      "conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(in, o.dim, o.kernel).stride(o.stride).padding(o.kernel / 2)));
  out_dim_ = o.dim;
}

std::pair<torch::Tensor, torch::Tensor> FramesImpl::encode(const ModalityBatch& mb) {
  auto x = channels_last_ ? mb.data.transpose(1, 2) : mb.data;  // [B, C, T]
  auto y = conv_->forward(x).transpose(1, 2);                     // [B, ceil(T/s), dim]
  // odd kernel with padding k/2: out = floor((L - 1) / s) + 1 = ceil(L / s); 0 stays 0
  auto len = torch::where(mb.lengths > 0, torch::floor_divide(mb.lengths - 1, options.stride) + 1,
                          torch::zeros_like(mb.lengths));
  return {y, len.clamp_max(y.size(1))};
}

// ---------------------------------------------------------------- text_tokens

TextTokensOptions TextTokensOptions::from_config(const Config& c) {
  TextTokensOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.max_len = c.get<int64_t>("max_len", o.max_len);
  BRAID_INPUT_CHECK(o.dim > 0 && o.max_len >= 0, "{}: '{}' needs a positive dim and max_len >= 0", c.origin(), c.path());
  return o;
}

TextTokensImpl::TextTokensImpl(TextTokensOptions o, const EncoderContext& ctx) : options(o) {
  TORCH_CHECK(ctx.vocab_size > 0, "text_tokens: the tokenizer vocabulary is empty");
  emb_ = register_module("emb", torch::nn::Embedding(torch::nn::EmbeddingOptions(ctx.vocab_size, o.dim).padding_idx(0)));
  out_dim_ = o.dim;
}

std::pair<torch::Tensor, torch::Tensor> TextTokensImpl::encode(const ModalityBatch& mb) {
  auto ids = mb.data;
  auto len = mb.lengths;
  if (options.max_len > 0 && ids.size(1) > options.max_len) {
    ids = ids.slice(1, 0, options.max_len);
    len = len.clamp_max(options.max_len);
  }
  return {emb_->forward(ids), len};
}

// ---------------------------------------------------------------- registry

namespace {

template <typename Impl, typename Opts>
SequenceRegistry::Factory make_for(std::vector<std::string> modalities, std::string name) {
  return [modalities, name](const Config& c, const EncoderContext& ctx) -> SequencePtr {
    BRAID_INPUT_CHECK(std::find(modalities.begin(), modalities.end(), ctx.modality) != modalities.end(),
                      "{}: recipe key '{}': sequence front-end '{}' reads {}, not '{}'", c.origin(), c.full("name"),
                      name, modalities.front(), ctx.modality);
    return std::make_shared<Impl>(Opts::from_config(c), ctx);
  };
}

}  // namespace

const SequenceRegistry& sequence_registry() {
  static const SequenceRegistry r = [] {
    SequenceRegistry r("sequence front-end");
    r.add("image_rows", "each image row is a step: 3·W pixels through a 1-D conv over rows",
          make_for<ImageRowsImpl, ImageRowsOptions>({"image"}, "image_rows"));
    r.add("image_grid", "small CNN; its h×w feature grid flattened (raster order) to h·w steps",
          make_for<ImageGridImpl, ImageGridOptions>({"image"}, "image_grid"));
    r.add("audio_frames", "log-mel frames through a 1-D conv (optionally strided)",
          make_for<FramesImpl, FramesOptions>({"audio"}, "audio_frames"));
    r.add("series_frames", "series frames through a 1-D conv (optionally strided)",
          make_for<FramesImpl, FramesOptions>({"series"}, "series_frames"));
    r.add("text_tokens", "learned sub-word embeddings", make_for<TextTokensImpl, TextTokensOptions>({"text"}, "text_tokens"));
    return r;
  }();
  return r;
}

std::string default_sequence(const std::string& modality) {
  if (modality == "image") return "image_rows";
  if (modality == "audio") return "audio_frames";
  if (modality == "text") return "text_tokens";
  return "series_frames";
}

SequencePtr make_sequence(const Config& sequences, const EncoderContext& ctx) {
  auto c = sequences.at(ctx.modality);
  return sequence_registry().make_named(c.get<std::string>("name", default_sequence(ctx.modality)), c, ctx);
}

// ---------------------------------------------------------------- step helpers

torch::Tensor sinusoidal_positions(int64_t T, int64_t dim, const torch::TensorOptions& opts) {
  auto pos = torch::arange(T, opts.dtype(torch::kFloat)).unsqueeze(1);                  // [T, 1]
  auto i2 = torch::arange(0, dim, 2, opts.dtype(torch::kFloat));                        // 2i
  auto freq = torch::exp(i2 * (-std::log(10000.0) / static_cast<double>(dim)));         // 10000^(-2i/dim)
  auto ang = pos * freq.unsqueeze(0);                                                   // [T, ceil(dim/2)]
  auto pe = torch::zeros({T, dim}, opts.dtype(torch::kFloat));
  pe.slice(1, 0, dim, 2).copy_(torch::sin(ang));
  pe.slice(1, 1, dim, 2).copy_(torch::cos(ang.slice(1, 0, dim / 2)));
  return pe.to(opts.dtype());
}

torch::Tensor last_step(const torch::Tensor& x, const torch::Tensor& lengths) {
  auto idx = (lengths - 1).clamp_min(0).view({-1, 1, 1}).expand({x.size(0), 1, x.size(2)});
  return x.gather(1, idx).squeeze(1);
}

torch::Tensor resample_nearest(const torch::Tensor& x, const torch::Tensor& lengths, int64_t steps) {
  TORCH_CHECK(steps > 0, "resample_nearest: steps must be positive, got ", steps);
  auto t = torch::arange(steps, lengths.options().dtype(torch::kDouble)).add(0.5).unsqueeze(0);  // [1, steps]
  auto L = lengths.to(torch::kDouble).unsqueeze(1);                                              // [B, 1]
  auto idx = torch::floor(t * L / static_cast<double>(steps)).to(torch::kLong);
  idx = torch::minimum(idx, (lengths - 1).clamp_min(0).unsqueeze(1)).clamp_max(x.size(1) - 1);  // [B, steps]
  return x.gather(1, idx.unsqueeze(-1).expand({x.size(0), steps, x.size(2)}));
}

int64_t frame_dim(const EncoderContext& ctx) {
  if (ctx.modality == "image") return 3 * ctx.image_size;
  if (ctx.modality == "audio") return ctx.n_mels;
  if (ctx.modality == "series") return ctx.series_channels;
  input_error("modality '{}' has no real-valued frames to regress (image, audio or series)", ctx.modality);
}

SequenceFeatures raw_frames(const ModalityBatch& mb, const EncoderContext& ctx) {
  const int64_t F = frame_dim(ctx), B = mb.present.size(0);
  SequenceFeatures f;
  f.present = mb.present;
  if (!mb.data.defined()) {
    f.x = torch::zeros({B, 1, F}, torch::TensorOptions().device(mb.present.device()));
    f.lengths = torch::zeros({B}, mb.present.options().dtype(torch::kLong));
    return f;
  }
  if (ctx.modality == "image") {
    const int64_t H = mb.data.size(2), W = mb.data.size(3);
    f.x = mb.data.permute({0, 2, 1, 3}).reshape({B, H, 3 * W});  // row h: [R row, G row, B row]
    f.lengths = mb.present.to(torch::kLong) * H;
  } else if (ctx.modality == "audio") {
    f.x = mb.data.transpose(1, 2);
    f.lengths = mb.lengths * mb.present.to(torch::kLong);
  } else {
    f.x = mb.data;
    f.lengths = mb.lengths * mb.present.to(torch::kLong);
  }
  TORCH_CHECK(f.x.size(2) == F, "raw_frames: '", ctx.modality, "' frames have width ", f.x.size(2), ", expected ", F);
  return f;
}

}  // namespace braid::nn
