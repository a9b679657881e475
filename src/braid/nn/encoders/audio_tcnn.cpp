#include "braid/nn/encoders/audio_tcnn.h"

#include <torch/torch.h>

#include "braid/nn/blocks.h"

namespace braid::nn {

AudioTCNNOptions AudioTCNNOptions::from_config(const Config& c) {
  AudioTCNNOptions o;
  o.channels = c.get<std::vector<int64_t>>("channels", o.channels);
  o.kernel = c.get<int64_t>("kernel", o.kernel);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.pool = c.get<std::string>("pool", o.pool);
  o.freq_mask = c.get<int64_t>("freq_mask", o.freq_mask);
  o.time_shift = c.get<int64_t>("time_shift", o.time_shift);
  BRAID_INPUT_CHECK(!o.channels.empty() && o.dim > 0, "{}: '{}' needs channels and a positive dim", c.origin(), c.path());
  for (auto ch : o.channels)
    BRAID_INPUT_CHECK(ch > 0, "{}: '{}' needs positive channels, got {}", c.origin(), c.full("channels"), ch);
  BRAID_INPUT_CHECK(o.kernel > 0 && o.kernel % 2 == 1, "{}: '{}' must be a positive odd number, got {}", c.origin(),
                    c.full("kernel"), o.kernel);
  BRAID_INPUT_CHECK(o.pool == "max" || o.pool == "mean", "{}: '{}' must be max or mean, got '{}'", c.origin(),
                    c.full("pool"), o.pool);
  BRAID_INPUT_CHECK(o.freq_mask >= 0 && o.time_shift >= 0, "{}: '{}': freq_mask and time_shift must be >= 0",
                    c.origin(), c.path());
  return o;
}

AudioTCNNImpl::AudioTCNNImpl(AudioTCNNOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  TORCH_CHECK(ctx.n_mels > 0, "audio_tcnn: the number of mel bands is unknown");
  convs_ = register_module("convs", torch::nn::ModuleList());
  norms_ = register_module("norms", torch::nn::ModuleList());
  int64_t in = ctx.n_mels;
  for (auto ch : options.channels) {
    convs_->push_back(torch::nn::Conv1d(
        torch::nn::Conv1dOptions(in, ch, options.kernel).padding(options.kernel / 2).bias(false)));
    norms_->push_back(torch::nn::BatchNorm1d(ch));
    in = ch;
  }
  out_ = register_module("out", torch::nn::Linear(in, options.dim));
  out_dim_ = options.dim;
}

torch::Tensor AudioTCNNImpl::augment(torch::Tensor x, const torch::Tensor& lengths) const {
  const int64_t B = x.size(0), F = x.size(1), T = x.size(2);
  if (options.time_shift > 0 && T > 1) {
    // frame t of a sample reads frame (t - s) mod len of the same sample; padding stays in place
    auto len = lengths.clamp_min(1).unsqueeze(1);                                            // [B, 1]
    auto s = torch::randint(-options.time_shift, options.time_shift + 1, {B, 1}, lengths.options());
    auto t = torch::arange(T, lengths.options()).unsqueeze(0);                              // [1, T]
    auto src = torch::where(t < len, torch::remainder(t - s, len), t.expand({B, T}));
    x = x.gather(2, src.unsqueeze(1).expand({B, F, T}));
  }
  if (options.freq_mask > 0) {
    auto w = torch::randint(0, options.freq_mask + 1, {B, 1}, lengths.options());
    auto f0 = (torch::rand({B, 1}, x.options()) * (F - w + 1).to(x.scalar_type())).floor().to(torch::kLong);
    auto f = torch::arange(F, lengths.options()).unsqueeze(0);
    auto band = (f >= f0) & (f < f0 + w);  // [B, F]
    x = x.masked_fill(band.unsqueeze(2), 0.0);
  }
  return x;
}

torch::Tensor AudioTCNNImpl::encode(const ModalityBatch& mb) {
  auto x = mb.data;  // [B, n_mels, T]
  auto len = mb.lengths;  // halved with each pooling
  if (is_training()) x = augment(x, len);
  // frames past a row's length are zeroed before every convolution and pooling, so a sample's features do
  // not depend on how much padding its batch has (the kernel sees zeros there, as at the edges)
  auto zero_padding = [&](const torch::Tensor& t) {
    return t.masked_fill(padding_mask(len, t.size(2)).unsqueeze(1), 0.0);
  };
  const size_t n = convs_->size();
  x = zero_padding(x);
  for (size_t i = 0; i < n; ++i) {
    x = torch::relu(norms_[i]->as<torch::nn::BatchNorm1d>()->forward(convs_[i]->as<torch::nn::Conv1d>()->forward(x)));
    x = zero_padding(x);  // also keeps padding out of a ceil-mode pooling window (activations are >= 0)
    if (i + 1 < n && x.size(2) >= 2) {
      x = torch::max_pool1d(x, 2, 2, 0, 1, /*ceil_mode=*/true);
      len = torch::div(len + 1, 2, "floor");
    }
  }
  auto seq = x.transpose(1, 2);  // [B, T', C]
  if (options.pool == "mean") return out_->forward(masked_mean(seq, len));
  auto pad = padding_mask(len.clamp_min(1), seq.size(1));  // [B, T']; an empty row pools its first frame
  auto pooled = seq.masked_fill(pad.unsqueeze(2), -std::numeric_limits<float>::infinity()).amax(1);
  return out_->forward(pooled);
}

}  // namespace braid::nn
