// braid/data/preprocess.h — one place that turns a manifest sample into model inputs.
//
// Training, evaluation, `braid embed` and the server all call this, so preprocessing can
// never drift between them. Options come from the recipe's `data:` section.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/data/audio.h"
#include "braid/core/batch.h"
#include "braid/data/image.h"
#include "braid/data/manifest.h"
#include "braid/data/tokenizer.h"

namespace braid::data {

// Preprocessed tensors of one sample (before padding); absent modalities are missing keys.
struct SampleTensors {
  std::map<std::string, torch::Tensor> mods;
};


struct TextOptions {
  std::string view;          // which named view to read ("" = the sample's first view)
  int64_t max_tokens = 32;   // longer texts are cut
  int64_t vocab = 2000;      // tokenizer vocabulary when braid trains one
  std::string tokenizer;     // path of an existing sentencepiece model ("" = train one on the train split)

  // The views a view names: "en+zh" -> {"en", "zh"} (their texts joined, one per line); "en" -> {"en"}.
  std::vector<std::string> view_parts() const;
};

struct SeriesOptions {
  int64_t max_steps = 0;     // keep at most this many steps (0 = all)
  bool normalize = true;     // per-series, per-channel z-score
};

// Test-time corruption of one modality (robustness sweeps). Deterministic per sample: the noise
// of a sample depends only on `seed` and the sample's manifest line.
//   image: x + level·σ_x·N(0,1) on the [0,1] image, clamped to [0,1] (σ_x: the image's own std)
//   audio: waveform x + level·rms(x)·N(0,1) — additive noise, never zeroing samples
//   text:  each token dropped (p = level/2) or replaced by a random token (p = level/2)
//   series: x + level·σ·N(0,1) per channel on the normalized frames
struct Noise {
  std::string modality;  // "" = none
  double level = 0.0;    // ε in [0, 1]
  uint64_t seed = 0;
};

struct PreprocessOptions {
  ImageOptions image;
  AudioOptions audio;
  bool audio_normalize = true;  // per-utterance mean/variance normalization of the log-mel
  TextOptions text;
  SeriesOptions series;
  Noise noise;  // not read from recipes; set by robustness evaluations

  static PreprocessOptions from_config(const Config& data_cfg);
};

class Preprocessor {
 public:
  // `modalities`: which modalities to produce (others are ignored even when present).
  Preprocessor(PreprocessOptions opt, std::vector<std::string> modalities, std::shared_ptr<const Tokenizer> tok);

  // Decode every requested modality of `s`. Errors name "<manifest>:<line>" and the file.
  SampleTensors process(const SampleRecord& s, const std::string& manifest_path) const;

  // The pieces, usable on their own (search queries, the server).
  // `rng_seed` drives the optional noise (ignored without it).
  torch::Tensor image(const std::string& path, uint64_t rng_seed = 0) const;
  torch::Tensor audio(const std::string& path, uint64_t rng_seed = 0) const;
  torch::Tensor text(const std::string& s, uint64_t rng_seed = 0) const;
  // The same preprocessing from an in-memory file (uploads); `name` labels the buffer in errors.
  // A file path and its bytes give identical tensors (the file versions read the bytes and decode
  // them with the same functions).
  torch::Tensor image_bytes(const uint8_t* bytes, size_t n, const std::string& name, uint64_t rng_seed = 0) const;
  torch::Tensor audio_bytes(const uint8_t* bytes, size_t n, const std::string& name, uint64_t rng_seed = 0) const;

  const std::vector<std::string>& modalities() const { return modalities_; }
  const PreprocessOptions& options() const { return opt_; }

 private:
  bool noisy(const char* modality) const;
  torch::Tensor image_pixels(const RawImage& img, uint64_t rng_seed) const;
  torch::Tensor audio_wave(std::vector<float> s, uint64_t rng_seed) const;
  PreprocessOptions opt_;
  std::vector<std::string> modalities_;
  std::shared_ptr<const Tokenizer> tok_;
};

// Pad and stack samples into a batch. `series_channels` > 0 checks the channel count.
Batch collate(const std::vector<SampleTensors>& samples, const std::vector<std::string>& modalities,
              const std::vector<int64_t>& index);

}  // namespace braid::data
