// braid/nn/encoders/raw.h — the input itself as a fixed-length vector, with no parameters.
//
// For data-level (early) fusion: each modality's raw input is pooled to a fixed size and the
// vectors are concatenated before one learned network (the classifier's head). Image: mean
// pooled to grid × grid per channel; audio: log-mel mean pooled over `frames` time bins of its
// valid length; series: likewise per channel; text: the share of each vocabulary id among the
// valid tokens (a bag of words).
#pragma once

#include "braid/core/config.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct RawOptions {
  int64_t grid = 8;    // image side after pooling
  int64_t frames = 8;  // time bins of audio / series
  static RawOptions from_config(const Config& c);
};

class RawImpl : public EncoderImpl {
 public:
  RawImpl(RawOptions o, const EncoderContext& ctx);
  RawOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  std::string modality_;
  int64_t vocab_ = 0;
};

}  // namespace braid::nn
