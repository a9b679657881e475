// braid/models/model.h — the model interface and its registry.
//
// A model reads a Batch and returns task outputs [B, outputs] (class logits or regression
// values). Models are named in recipes (`model: {name: fusion_classifier, ...}`).
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/registry.h"
#include "braid/core/batch.h"
#include "braid/nn/encoder.h"
#include "braid/nn/lm/chat.h"
#include "braid/nn/lm/sample.h"

namespace braid::models {

// What a run trains a model for (recipe key `task`; run/pipeline parses it).
//   Classify: forward() returns class logits [B, K] (cross-entropy against labels)
//   Regress:  forward() returns values [B, D] (MSE or CCC against targets)
//   Align:    objective() is the self-supervised loss; labels, when present, feed zero-shot and probes
//   Generate: objective() is the language-model loss of answers (chat template); generate() writes text
enum class Task { Classify, Regress, Align, Generate };

struct ModelContext {
  std::vector<std::string> modalities;                 // inputs the model reads
  std::map<std::string, nn::EncoderContext> encoders;  // per-modality data facts
  int64_t outputs = 0;                                 // classes, or regression dimensions (0 for align)
  Task task = Task::Classify;
  // align runs with labels and text: the class names as token ids [K, L] (0 = pad) and their
  // lengths [K], in class-id order (DeViSE ranks against their text embeddings); else undefined.
  torch::Tensor class_text, class_text_lengths;
  // generate runs: the chat template's ids and the tasks (run/pipeline fills them from the tokenizer).
  nn::lm::ChatSpec chat;
};

class ModelImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const Batch& batch) = 0;
  // Extra training loss of the last forward (translation, auxiliary heads, ...), added by the
  // trainer to the task loss; undefined when the model has none.
  virtual torch::Tensor auxiliary_loss() { return {}; }

  // Self-supervised models (recipe `task: align`): the training objective of one batch, which the
  // trainer minimizes instead of a supervised loss. The default rejects the task.
  virtual torch::Tensor objective(const Batch& batch);
  // Named terms of the last objective (logged with each training step), e.g. {"clip": 2.1}.
  virtual std::map<std::string, double> loss_terms() const { return {}; }
  // Models with a shared embedding space: L2-normalized [B, D] vectors of one modality, used by
  // retrieval, zero-shot and `braid embed`. Undefined when the model does not embed `modality`.
  virtual torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) { return {}; }

  // What evaluation and serving may ask of this model. Callers ask here, never by the model's
  // recipe name or its C++ type.
  struct Capabilities {
    std::vector<std::string> embeds;  // modalities embed() maps into the shared space
    bool matches = false;             // match_logits(): an image-text matching head (ITM re-ranking)
    int64_t codes = 0;                // codes(): entries of a discrete codebook shared by modalities (0 = none)
    bool generates = false;           // generate(): writes text about its inputs
    bool draws = false;               // draw(): makes images from text (image codes -> decode_codes())
    bool scores = false;              // score_batch(): evaluation reports the model's own metrics
  };
  virtual Capabilities capabilities() const { return {}; }
  // Matching head: logit[match] - logit[no match] of row-aligned (image, text) pairs, [B].
  virtual torch::Tensor match_logits(const ModalityBatch& image, const ModalityBatch& text);
  // Code ids [B, T] of one modality's sequence in the shared codebook; live codes of that codebook.
  virtual torch::Tensor codes(const std::string& modality, const ModalityBatch& mb);
  virtual int64_t live_codes() const { return 0; }
  // Images [B, 3, H, W] in [0, 1] of code ids [B, T] of `modality` (image tokenizers: codes("image", ..) back
  // to pixels). InputError for ids out of [0, capabilities().codes) or a length the decoder cannot lay out.
  virtual torch::Tensor decode_codes(const std::string& modality, const torch::Tensor& codes);

  // Models that score themselves (an image tokenizer's reconstruction, a generator's code likelihood): the
  // metrics of one batch, each a mean over its rows; eval averages them over batches weighted by rows. The
  // key "score" is the headline (higher is better: best.pt follows it).
  virtual std::map<std::string, double> score_batch(const Batch& batch);

  // Image generators: `per_prompt` images for each prompt (token ids of the run's tokenizer, no specials).
  struct DrawRequest {
    std::vector<std::vector<int64_t>> prompts;
    int64_t per_prompt = 1;
    // classifier-free guidance weight w: logits = cond + w (cond - uncond) = uncond + (1 + w)(cond - uncond);
    // 0 = the conditional logits alone (no unconditional pass)
    double guidance = 0.0;
    nn::lm::SampleOptions sample{1.0};  // temperature 1 over every code by default
    uint64_t seed = 0;                  // seeds the sampling generator: same request and seed, same images
    bool use_cache = true;
  };
  // -> [prompts * per_prompt, 3, H, W] float in [0, 1], prompt-major. InputError: no prompt, or one too long.
  virtual torch::Tensor draw(const DrawRequest& request);

  // Generative models: continue the chat of every row of `batch` that has `modality` ("" = none) after
  // `prompt_ids` (the question, no template tokens) -> new token ids. Rows lacking the modality are an
  // InputError. The same template as training (nn/lm/chat.h), so the logits match.
  struct GenerateRequest {
    std::string modality;
    std::vector<int64_t> prompt_ids;
    nn::lm::GenerateOptions options;
  };
  virtual nn::lm::Generated generate(const Batch& batch, const GenerateRequest& request);
  // Logits [B, T, V] of the rendered prompt (no answer) for every row: the parity check of training,
  // generation and serving.
  virtual torch::Tensor prompt_logits(const Batch& batch, const GenerateRequest& request);
};

using ModelPtr = std::shared_ptr<ModelImpl>;
using ModelRegistry = Registry<ModelPtr, const ModelContext&>;
const ModelRegistry& model_registry();

// Parameter count (all, or only those that require grad).
int64_t count_parameters(const torch::nn::Module& m, bool trainable_only = false);

}  // namespace braid::models
