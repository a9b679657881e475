// braid/models/early_fusion.h — tokenized early fusion: one Llama-family LM (nn/lm) over text tokens and the
// image codes of a VQ image tokenizer (models/vq_image.h) as a single token stream, trained in both
// directions — name -> image codes (drawing) and image codes -> name (captioning) — with classifier-free
// guidance for drawing.
//
// Vocabulary: the run's text tokens [0, V), then the K image codes [V, V + K), then <boi>, <eoi>.
// Sequences (G = g·g code slots, S = max_seq − G − 1 the fixed position of the first slot):
//   draw     <bos> text... <boi> c_1 ... c_G <eoi>    positions 0..L, S−1, S..S+G−1, S+G (= max_seq − 1)
//   caption  <bos> <boi> c_1 ... c_G <eoi> text... <eos>   positions 0, 1, ..., G + 3 + L
// so the image slots of a drawing sit at the same positions whatever the caption's length. Each code slot
// also adds a learned slot embedding (its place in the grid). Targets: the G codes (draw; logits over the
// code range only) and the text + <eos> (caption; logits over the text range only).
// Classifier-free guidance: in training the caption of a drawing row is dropped with p = cond_drop (the
// unconditional model); at test logits = cond + w (cond − uncond).
//
// recipe (task: generate):
//   model:
//     name: early_fusion
//     modalities: [image, text]
//     vq: {...}                 # the vq map of the tokenizer run (models/vq_image.h), loaded by init_from
//     init_from: runs/vq        # a vq_image run: the tokenizer's weights (kept frozen)
//     lm: {dim: 256, layers: 4, heads: 4, kv_heads: 2, hidden: 688, max_seq: 128, tie_embeddings: true}
//     cond_drop: 0.1            # p of dropping a drawing row's caption in training
//     caption: 0.25             # share of rows that also train image -> name (0 = drawing only)
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/models/vq_image.h"
#include "braid/nn/lm/causal_lm.h"

namespace braid::models {

class EarlyFusionImpl : public ModelImpl {
 public:
  EarlyFusionImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;  // InputError: a generate run has no task outputs
  torch::Tensor objective(const Batch& batch) override;
  std::map<std::string, double> loss_terms() const override { return terms_; }
  Capabilities capabilities() const override;
  torch::Tensor codes(const std::string& modality, const ModalityBatch& mb) override;
  torch::Tensor decode_codes(const std::string& modality, const torch::Tensor& codes) override;
  int64_t live_codes() const override { return vq->codebook->live_codes(); }
  // code_nll (draw, no caption dropped), text_nll (caption); score = −code_nll
  std::map<std::string, double> score_batch(const Batch& batch) override;
  torch::Tensor draw(const DrawRequest& request) override;
  // Captions every row's image (request.modality "image", no prompt).
  nn::lm::Generated generate(const Batch& batch, const GenerateRequest& request) override;
  torch::Tensor prompt_logits(const Batch& batch, const GenerateRequest& request) override;
  void train(bool on = true) override;

  // The sampled code ids [R, G] of a drawing request (R = prompts · per_prompt), before decoding.
  torch::Tensor draw_codes(const DrawRequest& request);
  // Teacher forcing through the sampling loop: the guided code logits [R, G, K] that predict `codes` [R, G]
  // (the same prefix, cache and guidance as draw_codes). `force_uncond` runs the unconditional pass even
  // at guidance 0 (a test of the guidance arithmetic).
  torch::Tensor code_logits(const DrawRequest& request, const torch::Tensor& codes, bool force_uncond = false);
  // The code logits [B, G, K] of drawing sequences of captions `text` [B, L] (lengths [B]) and codes [B, G]
  // in one full forward (the training path).
  torch::Tensor teacher_code_logits(const torch::Tensor& text, const torch::Tensor& lengths, const torch::Tensor& codes);

  VQTokenizer vq{nullptr};
  nn::lm::CausalLM lm{nullptr};
  torch::Tensor slot_pos;  // [G, dim]

 private:
  struct Seqs {
    torch::Tensor ids, pos, slot;  // [R, T] token ids, position ids, slot index + 1 (0 = not a code)
    torch::Tensor at;              // [R, n] positions whose hidden state predicts the targets
    torch::Tensor target;          // [R, n] target ids within their range (codes: 0..K−1, text: 0..V−1)
    torch::Tensor valid;           // [R, n] bool
  };
  Seqs draw_sequences(const torch::Tensor& text, const torch::Tensor& lengths, const torch::Tensor& codes,
                      const std::vector<bool>& drop) const;
  Seqs caption_sequences(const torch::Tensor& text, const torch::Tensor& lengths, const torch::Tensor& codes) const;
  torch::Tensor embed_ids(const torch::Tensor& ids, const torch::Tensor& slot);
  torch::Tensor hidden_of(const Seqs& s);
  torch::Tensor range_logits(const torch::Tensor& h, int64_t start, int64_t n);  // h [.., D] -> [.., n]
  torch::Tensor nll(const Seqs& s, const torch::Tensor& h, int64_t start, int64_t n);
  // The sampling loop of draw_codes / code_logits (forced: teacher-forced codes [R, G], logits out).
  torch::Tensor run_draw(const DrawRequest& r, const torch::Tensor* forced, torch::Tensor* logits_out,
                         bool force_uncond);
  struct Text {
    torch::Tensor ids, lengths;
  };
  Text batch_text(const Batch& batch, const torch::Tensor& rows) const;
  // <bos> <boi> codes <eoi> of normalized images: ids and slot indices [B, G + 3]
  std::pair<torch::Tensor, torch::Tensor> caption_prefix(const torch::Tensor& images);

  int64_t text_vocab_ = 0, codes_ = 0, slots_ = 0, boi_ = 0, eoi_ = 0, first_slot_ = 0;
  int64_t bos_ = 2, eos_ = 3, pad_ = 0;
  double cond_drop_ = 0.1, caption_ = 0.25;
  std::map<std::string, double> terms_;
};
TORCH_MODULE(EarlyFusion);

}  // namespace braid::models
