// braid/models/ave_localizer.h — audio-visual event localization in time (the AVE task; data/build/ave.h).
//
// A sequence of T segments arrives as one image (a grid of `grid` x `grid` frames, frame t at row t / grid,
// column t % grid) and one log-mel spectrogram (segment t = frames [t F, (t + 1) F) with F = frames / T).
// Each segment's frame and audio are encoded by registry encoders (the image encoder sees one frame, of side
// image_size / grid), projected to `dim`, fused per segment ([v, a, v * a]: the product lets a segment's
// picture and sound agree or not), passed through a bidirectional GRU over the T segments (temporal: none
// skips it), and classified per segment into `classes` ids (0 = background):
//   model: {name: ave_localizer, segments: 10, classes: 10, grid: 4, dim: 64, hidden: 64, dropout: 0.1,
//           temporal: gru, encoders: {image: {name: image_cnn, ...}, audio: {name: audio_tcnn, ...}}}
// With one modality (model.modalities: [image] or [audio]) the segment vector is that modality's projection.
//
// Task regress with train.loss segment_ce: the manifest's target holds the T per-segment ids; forward()
// returns the logits [B, T * classes], segment-major (segment t's logits at [t * classes, (t + 1) * classes)).
// The model scores itself (capabilities().scores): score_batch gives segment accuracy ("score"); `braid eval
// RUN --task localize` gives event-boundary F1 and the other scores of eval/localization.h.
#pragma once

#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include "braid/core/config.h"
#include "braid/models/model.h"

namespace braid::models {

class AveLocalizerImpl : public ModelImpl {
 public:
  AveLocalizerImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  Capabilities capabilities() const override {
    Capabilities c;
    c.scores = true;
    return c;
  }
  // {score, segment_accuracy, event_segment_accuracy, background_accuracy}: means over the batch's rows; the
  // last two over the row's event / background segments (rows without any count as 0 and 1).
  std::map<std::string, double> score_batch(const Batch& batch) override;
  int64_t segments() const { return segments_; }
  int64_t classes() const { return classes_; }

 private:
  // Per-segment features [B, T, dim] of one modality.
  torch::Tensor frames_of(const ModalityBatch& mb);
  torch::Tensor sounds_of(const ModalityBatch& mb);
  std::vector<std::string> modalities_;
  int64_t segments_ = 10, classes_ = 10, grid_ = 4, dim_ = 64, hidden_ = 64;
  bool gru_on_ = true;
  nn::EncoderPtr image_enc_, audio_enc_;
  torch::nn::Linear image_proj_{nullptr}, audio_proj_{nullptr}, fuse_{nullptr}, head_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};

}  // namespace braid::models
