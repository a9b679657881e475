#include "braid/nn/encoders/raw.h"

#include <torch/torch.h>

namespace braid::nn {

RawOptions RawOptions::from_config(const Config& c) {
  RawOptions o;
  o.grid = c.get<int64_t>("grid", o.grid);
  o.frames = c.get<int64_t>("frames", o.frames);
  BRAID_INPUT_CHECK(o.grid > 0 && o.frames > 0, "{}: '{}' needs positive grid and frames", c.origin(), c.path());
  return o;
}

RawImpl::RawImpl(RawOptions o, const EncoderContext& ctx) : options(o), modality_(ctx.modality) {
  if (modality_ == "image") {
    out_dim_ = 3 * o.grid * o.grid;
  } else if (modality_ == "audio") {
    out_dim_ = ctx.n_mels * o.frames;
  } else if (modality_ == "series") {
    out_dim_ = ctx.series_channels * o.frames;
  } else {
    TORCH_CHECK(ctx.vocab_size > 0, "raw: the tokenizer vocabulary is empty");
    vocab_ = ctx.vocab_size;
    out_dim_ = vocab_;
  }
}

// Mean of x [B, C, T] over `bins` equal spans of each row's first `len` steps -> [B, C * bins].
static torch::Tensor pool_valid(const torch::Tensor& x, const torch::Tensor& lengths, int64_t bins) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  auto len = lengths.to(x.device()).clamp(1, T).to(torch::kFloat).view({B, 1});           // [B, 1]
  auto t = torch::arange(T, x.options()).view({1, T});                                   // [1, T]
  auto bin = (t * bins / len).floor().clamp_max(bins - 1).to(torch::kLong);              // [B, T]
  auto valid = (t < len).to(x.dtype());                                                   // [B, T]
  auto onehot = torch::one_hot(bin, bins).to(x.dtype()) * valid.unsqueeze(-1);            // [B, T, bins]
  auto sums = torch::bmm(x, onehot);                                                       // [B, C, bins]
  auto counts = onehot.sum(1, true).clamp_min(1);                                          // [B, 1, bins]
  return (sums / counts).reshape({B, C * bins});
}

torch::Tensor RawImpl::encode(const ModalityBatch& mb) {
  const auto& x = mb.data;
  if (modality_ == "image")
    return torch::adaptive_avg_pool2d(x, {options.grid, options.grid}).flatten(1);
  if (modality_ == "audio") return pool_valid(x, mb.lengths, options.frames);
  if (modality_ == "series") return pool_valid(x.transpose(1, 2), mb.lengths, options.frames);
  // text ids [B, L] (0 = padding) -> token shares over the vocabulary
  auto counts = torch::zeros({x.size(0), vocab_}, torch::TensorOptions().dtype(torch::kFloat).device(x.device()));
  counts.scatter_add_(1, x, (x != 0).to(torch::kFloat));
  return counts / counts.sum(1, true).clamp_min(1);
}

}  // namespace braid::nn
