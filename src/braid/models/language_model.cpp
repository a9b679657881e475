#include "braid/models/language_model.h"

#include <torch/torch.h>

#include "braid/core/error.h"

namespace braid::models {

LanguageModelImpl::LanguageModelImpl(const Config& cfg, const ModelContext& ctx) {
  BRAID_INPUT_CHECK(ctx.task == Task::Generate, "{}: model 'lm' needs 'task: generate'", cfg.origin());
  auto lmc = cfg.at("lm");
  auto o = nn::lm::LMOptions::from_config(lmc);
  auto it = ctx.encoders.find("text");
  if (it != ctx.encoders.end() && it->second.vocab_size > 0)
    BRAID_INPUT_CHECK(it->second.vocab_size <= o.vocab_size,
                      "{}: recipe key '{}' is {} but the run's tokenizer has {} tokens (ids past the embedding)",
                      cfg.origin(), lmc.full("vocab_size"), o.vocab_size, it->second.vocab_size);
  cfg.mark_subtree("init_from");
  cfg.mark_subtree("tasks");
  lm = register_module("lm", nn::lm::CausalLM(o));
}

torch::Tensor LanguageModelImpl::forward(const Batch&) {
  input_error("model 'lm' writes text: ask it with `braid generate RUN --text \"...\"`");
}

ModelImpl::Capabilities LanguageModelImpl::capabilities() const {
  Capabilities c;
  c.generates = true;
  return c;
}

namespace {
torch::Tensor prompt_tensor(const std::vector<int64_t>& ids, const torch::Device& dev, int64_t max_seq) {
  BRAID_INPUT_CHECK(!ids.empty(), "generate: an empty prompt (model 'lm' continues text: give --text)");
  BRAID_INPUT_CHECK(static_cast<int64_t>(ids.size()) < max_seq,
                    "generate: the prompt takes {} of the model's {} positions (lm.max_seq); shorten it", ids.size(),
                    max_seq);
  return torch::tensor(ids, torch::kLong).view({1, -1}).to(dev);
}
}  // namespace

nn::lm::Generated LanguageModelImpl::generate(const Batch&, const GenerateRequest& r) {
  torch::NoGradGuard ng;
  const auto dev = lm->model->embed_tokens->weight.device();
  auto prompt = prompt_tensor(r.prompt_ids, dev, lm->options.max_seq);
  auto o = r.options;
  o.max_tokens = std::min(o.max_tokens, lm->options.max_seq - prompt.size(1));
  return nn::lm::generate(lm, prompt, o);
}

torch::Tensor LanguageModelImpl::prompt_logits(const Batch&, const GenerateRequest& r) {
  torch::NoGradGuard ng;
  return lm->forward(prompt_tensor(r.prompt_ids, lm->model->embed_tokens->weight.device(), lm->options.max_seq));
}

}  // namespace braid::models
