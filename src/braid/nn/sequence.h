// braid/nn/sequence.h — sequence front-ends: one modality of a batch -> per-step features.
//
// Where an encoder (encoder.h) gives one vector per sample, a sequence front-end keeps time:
// [B, T, out_dim()] features plus valid lengths, for the temporal fusions (MulT, MFN, MCTN in
// models/). Front-ends are built by name from a recipe map, like encoders:
//   sequences: {image: {name: image_rows, dim: 32}, audio: {name: audio_frames, stride: 2}}
// A modality without an entry (or without `name`) gets its default front-end
// (`default_sequence`). The registry lists the names:
//   image_rows     each image row is a step: its 3·W pixels through a 1-D conv over rows
//   image_grid     a small CNN; its h×w feature grid flattened in raster order to h·w steps
//   audio_frames   log-mel frames through a 1-D conv (optionally strided)
//   text_tokens    learned sub-word embeddings
//   series_frames  series frames through a 1-D conv (optionally strided)
//
// Also here: the step helpers the temporal models share (sinusoidal positions, the last valid
// step, nearest-step resampling to a common length, and the raw frames MCTN regresses).
#pragma once

#include "braid/nn/conv.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/core/registry.h"
#include "braid/core/batch.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

// Per-step features of one modality.
struct SequenceFeatures {
  torch::Tensor x;        // [B, T, D] float; steps at or past a row's length are zero
  torch::Tensor lengths;  // [B] int64 valid steps; 0 for absent rows
  torch::Tensor present;  // [B] bool: whether the row has the modality
};

class SequenceEncoderImpl : public torch::nn::Module {
 public:
  // Features of every row; absent rows (and a batch where nobody has the modality, whose
  // data is undefined: then T = 1) come out as zeros with length 0.
  SequenceFeatures forward(const ModalityBatch& mb);
  int64_t out_dim() const { return out_dim_; }

 protected:
  // x [B, T, out_dim()] and lengths [B] for a batch whose data is defined (absent rows are
  // zeroed by `forward`).
  virtual std::pair<torch::Tensor, torch::Tensor> encode(const ModalityBatch& mb) = 0;
  int64_t out_dim_ = 0;
};

using SequencePtr = std::shared_ptr<SequenceEncoderImpl>;
using SequenceRegistry = Registry<SequencePtr, const EncoderContext&>;
const SequenceRegistry& sequence_registry();

// The front-end a modality gets when the recipe names none: image_rows, audio_frames,
// text_tokens, series_frames.
std::string default_sequence(const std::string& modality);
// Build the front-end of `ctx.modality` from `sequences.<modality>` of a model recipe (the
// `name` key defaults to `default_sequence`). InputError when the front-end does not read
// that modality.
SequencePtr make_sequence(const Config& sequences, const EncoderContext& ctx);

// ---- front-ends (Options: inline defaults; `from_config` reads and checks a recipe map) ----

struct ImageRowsOptions {
  int64_t dim = 32;      // output width
  int64_t kernel = 3;    // 1-D conv kernel over rows (odd)
  int64_t pool = 1;      // average-pool the image by this factor first (28 px, pool 2: 14 steps)
  static ImageRowsOptions from_config(const Config& c);
};
// [B, 3, H, W] -> (avg pool) -> rows [B, H', 3·W'] -> Conv1d over rows -> [B, H', dim]; length H'.
class ImageRowsImpl : public SequenceEncoderImpl {
 public:
  ImageRowsImpl(ImageRowsOptions o, const EncoderContext& ctx);
  ImageRowsOptions options;

 protected:
  std::pair<torch::Tensor, torch::Tensor> encode(const ModalityBatch& mb) override;

 private:
  torch::nn::Conv1d conv_{nullptr};
};

struct ImageGridOptions {
  std::vector<int64_t> channels{16, 32};  // one conv-BN-ReLU-maxpool(2) block per entry
  int64_t dim = 32;                       // output width
  static ImageGridOptions from_config(const Config& c);
};
// [B, 3, H, W] -> blocks -> [B, C, h, w] -> h·w steps in raster order -> Linear -> [B, h·w, dim].
class ImageGridImpl : public SequenceEncoderImpl {
 public:
  ImageGridImpl(ImageGridOptions o, const EncoderContext& ctx);
  ImageGridOptions options;

 protected:
  std::pair<torch::Tensor, torch::Tensor> encode(const ModalityBatch& mb) override;

 private:
  ConvStack convs_;
  torch::nn::Linear out_{nullptr};
};

struct FramesOptions {
  int64_t dim = 32;      // output width
  int64_t kernel = 3;    // 1-D conv kernel over time (odd; zero padding kernel/2)
  int64_t stride = 1;    // conv stride: length L becomes ceil(L / stride)
  static FramesOptions from_config(const Config& c);
};
// audio_frames: [B, n_mels, T] -> Conv1d -> [B, ceil(T/stride), dim].
// series_frames: [B, T, C] -> Conv1d -> [B, ceil(T/stride), dim].
class FramesImpl : public SequenceEncoderImpl {
 public:
  FramesImpl(FramesOptions o, const EncoderContext& ctx);
  FramesOptions options;

 protected:
  std::pair<torch::Tensor, torch::Tensor> encode(const ModalityBatch& mb) override;

 private:
  bool channels_last_ = false;  // series data is [B, T, C]; audio is [B, C, T]
  torch::nn::Conv1d conv_{nullptr};
};

struct TextTokensOptions {
  int64_t dim = 32;      // embedding width
  int64_t max_len = 0;   // keep at most this many tokens (0 = all)
  static TextTokensOptions from_config(const Config& c);
};
// ids [B, L] -> Embedding (id 0 = padding) -> [B, L, dim].
class TextTokensImpl : public SequenceEncoderImpl {
 public:
  TextTokensImpl(TextTokensOptions o, const EncoderContext& ctx);
  TextTokensOptions options;

 protected:
  std::pair<torch::Tensor, torch::Tensor> encode(const ModalityBatch& mb) override;

 private:
  torch::nn::Embedding emb_{nullptr};
};

// ---- step helpers ----

// Transformer sinusoidal positions [T, dim]: pe[t, 2i] = sin(t / 10000^(2i/dim)),
// pe[t, 2i+1] = cos(t / 10000^(2i/dim)).
torch::Tensor sinusoidal_positions(int64_t T, int64_t dim, const torch::TensorOptions& opts);

// x [B, T, D] at step lengths-1 of each row (step 0 when the length is 0) -> [B, D].
torch::Tensor last_step(const torch::Tensor& x, const torch::Tensor& lengths);

// Nearest-step resampling of each row's L valid steps to `steps` steps: output step t reads
// input step floor((t + 1/2) · L / steps) (repeats steps when L < steps, skips when L > steps).
// x [B, T, D], lengths [B] -> [B, steps, D]; rows with L = 0 read step 0 (zeros from a front-end).
torch::Tensor resample_nearest(const torch::Tensor& x, const torch::Tensor& lengths, int64_t steps);

// The modality's raw real-valued frames, for regression targets (MCTN):
//   image [B, 3, H, W] -> rows [B, H, 3·W] (length H); audio [B, n_mels, T] -> [B, T, n_mels];
//   series [B, T, C] as is. Text has no real-valued frames: InputError.
// A batch without data gives zeros [B, 1, frame_dim(ctx)] with length 0.
SequenceFeatures raw_frames(const ModalityBatch& mb, const EncoderContext& ctx);
// Width of `raw_frames` for a modality: 3·image_size, n_mels or series_channels.
int64_t frame_dim(const EncoderContext& ctx);

}  // namespace braid::nn
