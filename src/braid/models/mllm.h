// braid/models/mllm.h — a LLaVA-style multimodal language model: modality encoder -> input projector ->
// k tokens in front of the prompt -> a Llama-family causal LM (nn/lm) that writes the answer.
//
// recipe (task: generate):
//   model:
//     name: mllm
//     modalities: [image, audio, text]        # text = the answers (and the tokenizer)
//     encoders: {image: {...}, audio: {...}}  # nn encoder registry; "enc_<m>" as fusion_classifier, so
//                                             # model.init_from a classifier run loads them
//     tokens: 4                               # modality tokens per input (k)
//     projector: {name: mlp, hidden: 256}     # linear | mlp (2 layers, GELU)
//     lm: {dim: 256, layers: 4, heads: 4, kv_heads: 2, hidden: 704, tie_embeddings: true, max_seq: 64}
//     freeze: [encoders, lm]                  # stage 1: only the projectors learn
//     tasks: [{name: name, modality: image, prompt: "what is shown?", answer: text}, ...]  (run/pipeline)
// The objective is the mean answer-token cross-entropy of every task on every row that has its modality
// (prompt, slots and padding masked: nn/lm/chat.h), averaged over tasks; loss_terms() names each task.
#pragma once

#include <map>
#include <set>
#include <string>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/lm/causal_lm.h"

namespace braid::models {

class MLLMImpl : public ModelImpl {
 public:
  MLLMImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;  // InputError: a generate run has no task outputs
  torch::Tensor objective(const Batch& batch) override;
  std::map<std::string, double> loss_terms() const override { return terms_; }
  // Pooled encoder features, L2-normalized (the nearest-neighbour caption baseline).
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb) override;
  Capabilities capabilities() const override;
  nn::lm::Generated generate(const Batch& batch, const GenerateRequest& request) override;
  torch::Tensor prompt_logits(const Batch& batch, const GenerateRequest& request) override;
  void train(bool on = true) override;

  // The prompt embeddings [B, T, dim] and ids [B, T] of every row of `batch` (each must have `modality`;
  // ids hold the slot placeholders where the projected tokens go).
  struct Prompt {
    torch::Tensor embeds, ids;
  };
  Prompt render_prompt(const Batch& batch, const std::string& modality, const std::vector<int64_t>& prompt_ids);

  // Teacher forcing of one task over the rows of `batch` that have its input and answer: the padded ids
  // [R, T] (right padding), the targets [R, T] (answer + <eos>), logits [R, T, V] and the rows. R = 0: none.
  struct TaskForward {
    torch::Tensor ids, target, logits, rows;
  };
  TaskForward task_forward(const Batch& batch, const nn::lm::ChatTask& task);
  // Mean cross-entropy of the next-token predictions at the target positions.
  static torch::Tensor answer_loss(const TaskForward& f);

  nn::lm::CausalLM lm{nullptr};

 private:
  torch::Tensor modality_tokens(const std::string& modality, const ModalityBatch& mb);  // [B, k, dim]
  std::map<std::string, nn::EncoderPtr> encoders_;
  std::map<std::string, torch::nn::Sequential> projectors_;
  std::set<std::string> frozen_;  // encoders | projectors | lm
  nn::lm::ChatSpec chat_;
  torch::Tensor class_text_, class_lengths_;
  int64_t tokens_ = 4;
  std::map<std::string, double> terms_;
  std::map<std::string, torch::Tensor> mod_tokens_;  // each modality encoded once per objective()
};
TORCH_MODULE(MLLM);

}  // namespace braid::models
