// braid/models/language_model.h — a Llama-family causal LM on its own (recipe `model: {name: lm}`, task
// generate): the run `braid import hf` makes of a LlamaForCausalLM / Qwen2ForCausalLM (run/hf_lm.h).
//
//   model:
//     name: lm
//     modalities: [text]
//     lm: {vocab_size: 49152, dim: 576, layers: 30, heads: 9, kv_heads: 3, hidden: 1536, ...}  (nn/lm/options.h)
//
// generate() continues the prompt ids as they are (no chat template: run/generator.cpp passes the tokenizer's
// own ids, e.g. <s> first for Llama tokenizers) until a stop token. Parameters: "lm." + Hugging Face's names,
// so `model.init_from` of an MLLM recipe loads them into its `lm` (same shapes).
#pragma once

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/nn/lm/causal_lm.h"

namespace braid::models {

class LanguageModelImpl : public ModelImpl {
 public:
  LanguageModelImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;  // InputError: it writes text
  Capabilities capabilities() const override;
  // request.prompt_ids [T] -> the continuation of one row (the batch is not read); max_tokens is cut to the
  // positions max_seq leaves after the prompt.
  nn::lm::Generated generate(const Batch& batch, const GenerateRequest& request) override;
  torch::Tensor prompt_logits(const Batch& batch, const GenerateRequest& request) override;  // [1, T, V]
  nn::lm::CausalLM lm{nullptr};
};

}  // namespace braid::models
