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
// Uni-Code input (the Uni-Code AVE transfer, docs/results/ave.md): with `unicode: {...}` (the model section of
// the Uni-Code run, e.g. recipes/emoji_unicode.yaml's) and `init_from: RUN` (that run), the encoders are
// replaced by the frozen Uni-Code model: each segment's frame (or second of audio) goes through its image (audio)
// path to the quantized code vectors, averaged over the code steps to one vector [D] per segment, then through
// one linear layer to `dim` shared by both modalities — so a localizer trained on one modality's codes reads the
// other's (`braid eval RUN --set model.code_modality=audio`). Only `code_modality` is read (no fusion).
// `code_input: semantic` (an ablation) reads the continuous semantic vectors before quantization instead:
//   model: {name: ave_localizer, code_modality: image, init_from: runs/ave-unicode,
//           unicode: {steps: 8, dim: 64, sequences: {image: {name: image_rows, ...}, audio: {...}}, ...}}
// The Uni-Code modules keep the names they have in a unicode run (seq_image, semantic_image, semantic_norm_image,
// codebook, ...: those the codes need), so the trainer's init_from loads them by name; they never train (no
// gradient, always in evaluation mode) and are saved with the localizer, so its run needs RUN no more. Training
// with a codebook that has no live code (init_from missing) is an InputError. The recipe needs both image and
// audio (the paths of both are kept, so that code_modality can switch at evaluation).
//
// Task regress with train.loss segment_ce: the manifest's target holds the T per-segment ids; forward()
// returns the logits [B, T * classes], segment-major (segment t's logits at [t * classes, (t + 1) * classes)).
// The model scores itself (capabilities().scores): score_batch gives segment accuracy ("score"); `braid eval
// RUN --task localize` gives event-boundary F1 and the other scores of eval/localization.h.
#pragma once

#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/models/model.h"

namespace braid::models {

class UnicodeImpl;

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
  // Uni-Code input: the modality whose codes are read ("" without model.unicode) and the frozen Uni-Code model.
  const std::string& code_modality() const { return code_modality_; }
  std::shared_ptr<UnicodeImpl> unicode() const { return unicode_; }
  // Pooled code vectors [B, T, D] of one modality's segments (Uni-Code input only; no gradient); with
  // code_input semantic the pooled semantic vectors before quantization.
  torch::Tensor segment_codes(const std::string& modality, const ModalityBatch& mb);
  void train(bool on = true) override;

 private:
  // The two kinds of segment input; each returns the width of the per-segment vector fed to `fuse`.
  int64_t build_encoders(const Config& cfg, const ModelContext& ctx);
  int64_t build_code_input(const Config& cfg, const ModelContext& ctx);
  // One modality's T segments as a batch of B * T rows, row b * T + t = segment t of row b: frames [B T, 3, s, s]
  // (grid cells) or seconds [B T, n_mels, F] of the log-mel.
  ModalityBatch frame_cells(const ModalityBatch& mb) const;
  ModalityBatch audio_seconds(const ModalityBatch& mb) const;
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
  std::string code_modality_, code_input_ = "codes";
  std::shared_ptr<UnicodeImpl> unicode_;
  torch::nn::Linear code_proj_{nullptr};
};

}  // namespace braid::models
