// braid/models/single_tower.h — ViLT-style single-tower model: one Transformer over the tokens of
// several modalities, trained with image-text matching (ITM), masked language modelling (MLM),
// an image-text contrastive (ITC) projection and, optionally, masked patch feature regression
// (MRFR) and masked patch classification (MRC).
//
//   model: {name: single_tower, modalities: [image, text, audio],
//           dim: 96, depth: 3, heads: 4, mlp_ratio: 2, dropout: 0.1,
//           patch: 4, audio_stride: 4, max_text: 32, embed_dim: 128,
//           weights: {itc: 1, itm: 1, mlm: 1, mrfr: 0, mrc: 0}, mask_prob: 0.15,
//           patch_mask_prob: 0.15, mrc_bins: 4}
//
// Tokens: text = sub-word embeddings (+ one [MASK] id = vocab) + learned positions; image = patch
// embedding (conv, stride = patch) + learned positions; audio = log-mel frames through a strided
// Conv1d + sinusoidal positions. Each token gets its modality-type embedding; a learned [CLS]
// token leads the sequence; padding is masked in attention.
//
// One shared Transformer runs on (a) each modality alone — its [CLS] through a per-modality
// projection is the ITC embedding (`embed()`, retrieval, zero-shot) — and (b) the fused
// [CLS] + text + image sequence, whose [CLS] feeds the ITM head (match / no match) and whose text
// positions feed the MLM head. Per batch: ITC (CLIP loss, image as the anchor of every other
// modality); ITM on B positives and 2B hard negatives (each image with a text sampled from its
// contrastive similarities, each text with an image likewise; pairs with identical token ids are
// never drawn as negatives); MLM on a separate fused pass with 15% of the text tokens masked.
// MRFR / MRC (weights `mrfr`, `mrc`, default 0): one more fused pass of the clean text with a share
// `patch_mask_prob` of the image patches (at least one per row) replaced by a learned [MASK] patch
// token. MRFR regresses, at the masked positions, the patch's pixels as the model reads them (the
// normalized image, 3·patch² values in channel, row, column order) with a linear head and
// objectives::mrfr_loss (MSE); the target is the input, not the learned patch embedding, so it
// cannot collapse. MRC classifies each masked patch into its colour bin: the patch's mean RGB,
// un-normalized with data.image mean/std to [0, 1] (clamped), each channel cut into `mrc_bins`
// equal bins, id = r·bins² + g·bins + b (bins³ classes; objectives::mrc_loss). Both are logged
// (`mrfr`, `mrc`, and `mrc_acc`, the accuracy on the masked patches); their heads and the [MASK]
// token exist only when a weight is non-zero, so runs without them keep their weight files.
// A term whose weight is 0 is not computed (ITM, MLM, MRFR, MRC), so it costs no time.
// Retrieval re-ranking (eval/rerank.h): ITC top-k, re-ordered by the ITM match logit.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <map>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/models/model.h"

namespace braid::models {

class SingleTowerImpl : public ModelImpl {
 public:
  SingleTowerImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;
  torch::Tensor objective(const Batch& batch) override;
  std::map<std::string, double> loss_terms() const override { return terms_; }
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) override;
  Capabilities capabilities() const override;
  // ITM match logit (logit[match] − logit[no match]) of row-aligned pairs: [B].
  torch::Tensor match_logits(const ModalityBatch& image, const ModalityBatch& text) override;
  // MRFR targets: the pixels of each patch of images [B, 3, H, W] as [B, N, 3·patch²] (patch n =
  // row·side + column, values in channel, row, column order), N = (H / patch)·(W / patch).
  torch::Tensor patch_pixels(const torch::Tensor& images) const;
  // MRC targets: the colour-bin id [B, N] int64 in [0, mrc_bins³) of patch_pixels() output (see above).
  torch::Tensor colour_bins(const torch::Tensor& pixels) const;

 private:
  struct Tokens {
    torch::Tensor x, pad;  // [B, T, dim], [B, T] bool (true = padding)
  };
  // ids: text ids replacing mb.data; patch_mask [B, N] bool: image patches replaced by the [MASK] token.
  Tokens tokens(const std::string& modality, const ModalityBatch& mb, const torch::Tensor& ids = {},
                const torch::Tensor& patch_mask = {});
  double weight(const char* k) const { return weights_.at(k); }
  // Runs the Transformer on [CLS] + parts; returns all outputs [B, 1 + ΣT, dim] after the final norm.
  torch::Tensor encode(const std::vector<Tokens>& parts);
  torch::Tensor itm_head(const torch::Tensor& cls);

  std::vector<std::string> modalities_;
  int64_t dim_ = 96, vocab_ = 0, mask_id_ = 0, patch_ = 4, audio_stride_ = 4, max_text_ = 32, embed_dim_ = 128;
  double mask_prob_ = 0.15, patch_mask_prob_ = 0.15;
  int64_t mrc_bins_ = 4;
  std::vector<double> image_mean_, image_std_;  // data.image normalization (MRC colour bins)
  std::map<std::string, double> weights_;
  torch::nn::Embedding tok_{nullptr}, type_{nullptr};
  torch::nn::Conv2d patch_embed_{nullptr};
  torch::nn::Conv1d audio_embed_{nullptr};
  torch::Tensor cls_, text_pos_, image_pos_, logit_scale_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_{nullptr};
  torch::nn::Linear itm_{nullptr}, mlm_{nullptr}, mrfr_{nullptr}, mrc_{nullptr};
  torch::Tensor patch_mask_token_;  // [1, 1, dim], only with mrfr or mrc
  std::map<std::string, torch::nn::Linear> proj_;
  std::map<std::string, double> terms_;
};

}  // namespace braid::models
