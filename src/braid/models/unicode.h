// braid/models/unicode.h — "unicode": Uni-Code (Xia et al., NeurIPS 2023, "Achieving Cross Modal
// Generalization with Multimodal Unified Representation"): paired modalities are mapped to one shared
// discrete codebook so that a head trained on one modality's codes works on another (CMG).
//
//   task: align
//   model: {name: unicode, modalities: [image, audio, text], steps: 8, dim: 64, hidden: 64,
//           sequences: {image: {name: image_rows}, audio: {name: audio_frames, stride: 4}},
//           text_layers: 1, semantic_norm: batch, private_norm: none, club_detach: none, club_input: continuous,
//           codes: 400, decay: 0.99, beta: 0.25, mm_ema: true, teacher: mean,
//           reset: true, reset_after: 300, recent: 100,
//           club: {hidden: 64, steps: 5, lr: 0.001}, cpc: {context: 64, horizon: 2, cross_weight: 1, self_weight: 0.1},
//           weights: {recon: 1, commit: 1, club: 1, cpc: 1, cmcm: 1, nce: 0}, nce_temperature: 0.1}
//
// Per modality m: a sequence front-end (nn/sequence.h; text adds `text_layers` Transformer blocks over
// its tokens) resampled to T = `steps` steps (nn::resample_nearest), then two branches (Linear-ReLU-Linear,
// width `dim`): semantic s^m [B, T, D] (then normalized, `semantic_norm`: batch | layer | none) and
// modality-specific p^m [B, T, D] (normalized the same way by `private_norm`, default none). s^m is quantized with the shared codebook (objectives/codebook.h). Training objective (rows that have every modality):
//   recon   Σ_m MSE(dec_m([ŝ^m ; p^m]), frames_m) — frames: image rows / log-mel frames (nn::raw_frames),
//           text: its token embeddings (detached), all resampled to T
//   commit  cross-modal commitment (β, own 2β, others β/(M−1)); the codebook itself moves by (MM-)EMA
//   club    Σ_m CLUB(s^m_t ; p^m_t) over all (row, step) pairs (s^m detached with club_detach: semantic);
//           its q_θ takes `club.steps` Adam steps
//           inside objective() before the estimate (its optimizer is not checkpointed: a resumed run
//           restarts the inner Adam moments; the weights themselves are restored)
//   cpc     Cross-CPC over the semantic sequences (objectives/cross_cpc.h)
//   cmcm    L_cmcm (objectives/cmcm.h)
//   nce     optional baseline: symmetric CLIP-style InfoNCE between modalities' mean semantic vectors
// total = Σ weights.term · term. A zero weight skips the term (and CLUB's inner steps).
// embed(m) = L2-normalized mean over steps of the quantized semantic sequence; it needs only m, so a
// model pretrained on three modalities is used with one. forward() returns the first modality's embed.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/normalization.h>

#include <map>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/blocks.h"
#include "braid/nn/sequence.h"
#include "braid/objectives/club.h"
#include "braid/objectives/codebook.h"
#include "braid/objectives/cross_cpc.h"

namespace braid::models {

struct UnicodeWeights {
  double recon = 1, commit = 1, club = 1, cpc = 1, cmcm = 1, nce = 0;
};

struct UnicodeOptions {
  int64_t steps = 8;          // common sequence length T
  int64_t dim = 64;           // D of semantic / specific features and of the codes
  int64_t hidden = 64;        // branch and decoder hidden width
  int64_t text_layers = 1;    // Transformer blocks over text tokens
  // Normalization of every modality's semantic branch output before quantization:
  //   "layer": LayerNorm over D (the released code's semantic encoder is a post-norm Transformer whose last
  //            op is a LayerNorm): every s^m_t has the same scale (‖s‖ ≈ √D);
  //   "batch": per-modality standardization over the batch's (row, step) vectors, no affine (BatchNorm, running
  //            statistics at eval): besides the scale it removes each modality's mean offset (the
  //            "modality gap"), so that the modalities' features start in one region of the codebook;
  //   "none":  the bare Linear-ReLU-Linear branch (braid before 2026-12-05: nothing fixed the scale of s,
  //            L_cmcm stayed at its uniform-distribution value 1.5·ln B all run and no code was shared).
  std::string semantic_norm = "batch";
  // The same choices for the private (modality-specific) branch output p^m, which feeds CLUB and the decoder.
  // "none" (the default: braid before 2026-12-06). With "batch" every dimension of p has unit variance over the
  // batch, so a constant private branch (the D = 128 runs of 2026-12-06: total variance ~0.015, CLUB's q(p|s)
  // at its NLL floor) can no longer make CLUB's estimate vanish.
  std::string private_norm = "none";
  // What CLUB's estimate (the term the encoders minimize) lets its gradient reach:
  //   "none":     s^m and p^m (braid before 2026-12-06; the encoders can lower the estimate by making s^m
  //               uninformative — with private_norm batch the semantic codes collapsed, full 0.145 at D = 128);
  //   "semantic": s^m enters as a constant, so the term can only make p^m unpredictable from s^m; s^m is
  //               shaped by the other terms alone. CLUB's own fit (q_θ) is unchanged.
  std::string club_detach = "none";
  // Which semantic features CLUB reads as x: "continuous" (s^m after semantic_norm, braid's default) or
  // "quantized" (ŝ^m, the straight-through codes: the released code's mi_est(vq, encoder_result)).
  std::string club_input = "continuous";
  objectives::CodebookOptions codebook;   // codes, decay, epsilon, beta, mm_ema, teacher, reset_after, recent
  objectives::ClubOptions club;           // hidden, steps, lr
  objectives::CrossCPCOptions cpc;        // context, horizon, cross_weight, self_weight
  UnicodeWeights weights;
  double nce_temperature = 0.1;
  static UnicodeOptions from_config(const Config& c);
};

class UnicodeImpl : public ModelImpl {
 public:
  UnicodeImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  torch::Tensor objective(const Batch& batch) override;
  std::map<std::string, double> loss_terms() const override { return terms_; }
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) override;

  struct Encoded {
    torch::Tensor s, p, present;  // [B, T, D], [B, T, D], [B] bool
  };
  Encoded encode(const std::string& modality, const ModalityBatch& mb);
  Capabilities capabilities() const override { return {mods_, false, options.codebook.codes}; }
  // Code indices [B, T] of a modality's semantic sequence (for CMG on codes and health views).
  torch::Tensor codes(const std::string& modality, const ModalityBatch& mb) override;
  int64_t live_codes() const override;
  objectives::SharedCodebook codebook() const { return codebook_; }
  const std::vector<std::string>& modalities() const { return mods_; }
  UnicodeOptions options;

 private:
  std::vector<std::string> mods_;
  std::map<std::string, nn::EncoderContext> ctx_;
  std::map<std::string, nn::SequencePtr> seq_;
  std::map<std::string, std::vector<nn::TransformerBlock>> text_blocks_;
  std::map<std::string, nn::MLP> sem_, spec_, dec_;
  std::map<std::string, torch::nn::LayerNorm> sem_ln_;     // semantic_norm "layer"
  std::map<std::string, torch::nn::BatchNorm1d> sem_bn_;   // semantic_norm "batch"
  std::map<std::string, torch::nn::LayerNorm> priv_ln_;    // private_norm "layer"
  std::map<std::string, torch::nn::BatchNorm1d> priv_bn_;  // private_norm "batch"
  objectives::SharedCodebook codebook_{nullptr};
  std::map<std::string, objectives::Club> club_;
  objectives::CrossCPC cpc_{nullptr};
  std::map<std::string, double> terms_;
};

}  // namespace braid::models
