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
#include "braid/data/batch.h"
#include "braid/data/image.h"
#include "braid/data/manifest.h"
#include "braid/data/tokenizer.h"

namespace braid::data {

struct TextOptions {
  std::string view;          // which named view to read ("" = the sample's first view)
  int64_t max_tokens = 32;   // longer texts are cut
  int64_t vocab = 2000;      // tokenizer vocabulary when braid trains one
  std::string tokenizer;     // path of an existing sentencepiece model ("" = train one on the train split)
};

struct SeriesOptions {
  int64_t max_steps = 0;     // keep at most this many steps (0 = all)
  bool normalize = true;     // per-series, per-channel z-score
};

struct PreprocessOptions {
  ImageOptions image;
  AudioOptions audio;
  bool audio_normalize = true;  // per-utterance mean/variance normalization of the log-mel
  TextOptions text;
  SeriesOptions series;

  static PreprocessOptions from_config(const Config& data_cfg);
};

class Preprocessor {
 public:
  // `modalities`: which modalities to produce (others are ignored even when present).
  Preprocessor(PreprocessOptions opt, std::vector<std::string> modalities, std::shared_ptr<const Tokenizer> tok);

  // Decode every requested modality of `s`. Errors name "<manifest>:<line>" and the file.
  SampleTensors process(const SampleRecord& s, const std::string& manifest_path) const;

  // The pieces, usable on their own (search queries, the server).
  torch::Tensor image(const std::string& path) const;
  torch::Tensor audio(const std::string& path) const;
  torch::Tensor text(const std::string& s) const;

  const std::vector<std::string>& modalities() const { return modalities_; }
  const PreprocessOptions& options() const { return opt_; }

 private:
  PreprocessOptions opt_;
  std::vector<std::string> modalities_;
  std::shared_ptr<const Tokenizer> tok_;
};

// Pad and stack samples into a batch. `series_channels` > 0 checks the channel count.
Batch collate(const std::vector<SampleTensors>& samples, const std::vector<std::string>& modalities,
              const std::vector<int64_t>& index);

}  // namespace braid::data
