#include "braid/models/mllm.h"

#include <torch/torch.h>

#include "braid/core/error.h"

namespace braid::models {

namespace {

// A row's answer ids: the first `len` ids of row `b` of a padded [N, L] id matrix.
std::vector<int64_t> row_ids(const torch::Tensor& data, const torch::Tensor& lengths, int64_t b) {
  const int64_t n = lengths[b].item<int64_t>();
  auto r = data[b].narrow(0, 0, n).to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + n);
}

// embeds [R, T, D] with positions [s, s + k) replaced by the modality tokens tok [R, k, D].
torch::Tensor splice_slots(const torch::Tensor& embeds, const torch::Tensor& tok, int64_t s, int64_t k) {
  return torch::cat({embeds.narrow(1, 0, s), tok.to(embeds.dtype()), embeds.narrow(1, s + k, embeds.size(1) - s - k)}, 1);
}

bool has_row(const Batch& batch, const std::string& m, int64_t b) {
  auto it = batch.mods.find(m);
  return it != batch.mods.end() && it->second.present.defined() && it->second.present[b].item<bool>();
}

}  // namespace

MLLMImpl::MLLMImpl(const Config& cfg, const ModelContext& ctx) : chat_(ctx.chat) {
  BRAID_INPUT_CHECK(ctx.task == Task::Generate && chat_.defined(),
                    "{}: model 'mllm' needs 'task: generate' and text in model.modalities (the answers)", cfg.origin());
  BRAID_INPUT_CHECK(ctx.encoders.count("text"), "{}: model 'mllm' needs 'text' in model.modalities (the answers)",
                    cfg.origin());
  tokens_ = cfg.get<int64_t>("tokens", 4);
  BRAID_INPUT_CHECK(tokens_ >= 1 && tokens_ <= 256, "{}: recipe key '{}' must be in 1..256, got {}", cfg.origin(),
                    cfg.full("tokens"), tokens_);

  auto lmc = cfg.at("lm");
  const int64_t vocab = ctx.encoders.at("text").vocab_size;
  if (!lmc.has("vocab_size")) lmc.set_path("vocab_size", std::to_string(vocab));  // the tokenizer's
  auto lo = nn::lm::LMOptions::from_config(lmc);
  BRAID_INPUT_CHECK(lo.vocab_size == vocab, "{}: recipe key '{}' is {} but the run's tokenizer has {} pieces",
                    cfg.origin(), lmc.full("vocab_size"), lo.vocab_size, vocab);
  lm = register_module("lm", nn::lm::CausalLM(lo));

  auto pc = cfg.at("projector");
  const std::string pname = pc.get<std::string>("name", "mlp");
  BRAID_INPUT_CHECK(pname == "linear" || pname == "mlp", "{}: recipe key '{}': expected linear or mlp, got '{}'",
                    cfg.origin(), pc.full("name"), pname);
  const int64_t hidden = pc.get<int64_t>("hidden", 4 * lo.dim);
  BRAID_INPUT_CHECK(hidden >= 1, "{}: recipe key '{}' must be >= 1", cfg.origin(), pc.full("hidden"));

  auto enc_cfg = cfg.at("encoders");
  for (const auto& m : ctx.modalities) {
    if (m == "text") continue;
    BRAID_INPUT_CHECK(enc_cfg.has(m), "{}: recipe key '{}' is missing: modality '{}' needs an encoder", cfg.origin(),
                      enc_cfg.full(m), m);
    auto enc = nn::encoder_registry().make(enc_cfg.at(m), ctx.encoders.at(m));
    register_module("enc_" + m, enc);
    encoders_[m] = enc;
    torch::nn::Sequential seq;
    if (pname == "linear") {
      seq->push_back(torch::nn::Linear(enc->out_dim(), tokens_ * lo.dim));
    } else {
      seq->push_back(torch::nn::Linear(enc->out_dim(), hidden));
      seq->push_back(torch::nn::GELU());
      seq->push_back(torch::nn::Linear(hidden, tokens_ * lo.dim));
    }
    projectors_[m] = register_module("prj_" + m, seq);
    BRAID_INPUT_CHECK(chat_.slots.count(m), "{}: the tokenizer has no slot token for modality '{}'", cfg.origin(), m);
  }
  for (const auto& k : enc_cfg.keys())
    if (!encoders_.count(k)) enc_cfg.mark_subtree(k);
  for (const auto& t : chat_.tasks)
    BRAID_INPUT_CHECK(t.modality.empty() || encoders_.count(t.modality),
                      "{}: task '{}' reads modality '{}', which is not in model.modalities", cfg.origin(), t.name,
                      t.modality);

  for (const auto& part : cfg.get<std::vector<std::string>>("freeze", {})) {
    BRAID_INPUT_CHECK(part == "encoders" || part == "projectors" || part == "lm",
                      "{}: recipe key '{}': '{}' is not one of encoders, projectors, lm", cfg.origin(),
                      cfg.full("freeze"), part);
    frozen_.insert(part);
  }
  for (auto& [m, e] : encoders_)
    if (frozen_.count("encoders"))
      for (auto& p : e->parameters()) p.requires_grad_(false);
  for (auto& [m, p] : projectors_)
    if (frozen_.count("projectors"))
      for (auto& t : p->parameters()) t.requires_grad_(false);
  if (frozen_.count("lm"))
    for (auto& p : lm->parameters()) p.requires_grad_(false);
  cfg.mark_subtree("init_from");  // read by the trainer (a run directory or a list)
  class_text_ = ctx.class_text;
  class_lengths_ = ctx.class_text_lengths;
  train(is_training());
}

void MLLMImpl::train(bool on) {
  ModelImpl::train(on);
  if (frozen_.count("encoders"))
    for (auto& [m, e] : encoders_) e->eval();
}

torch::Tensor MLLMImpl::forward(const Batch&) {
  input_error("model 'mllm' writes text: train it with 'task: generate', ask it with `braid generate`");
}

ModelImpl::Capabilities MLLMImpl::capabilities() const {
  Capabilities c;
  for (const auto& [m, e] : encoders_) c.embeds.push_back(m);
  c.generates = true;
  return c;
}

torch::Tensor MLLMImpl::embed(const std::string& modality, const ModalityBatch& mb) {
  auto it = encoders_.find(modality);
  if (it == encoders_.end() || !mb.data.defined()) return {};
  return torch::nn::functional::normalize(it->second->forward(mb),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Tensor MLLMImpl::modality_tokens(const std::string& modality, const ModalityBatch& mb) {
  auto f = encoders_.at(modality)->forward(mb);
  auto t = projectors_.at(modality)->forward(f);
  return t.view({f.size(0), tokens_, lm->options.dim});
}

MLLMImpl::Prompt MLLMImpl::render_prompt(const Batch& batch, const std::string& modality,
                                         const std::vector<int64_t>& prompt_ids) {
  const int64_t B = batch.size();
  BRAID_INPUT_CHECK(B > 0, "generate: an empty batch");
  BRAID_INPUT_CHECK(modality.empty() || encoders_.count(modality),
                    "generate: this model reads no '{}' (it reads {})", modality,
                    fmt::join(capabilities().embeds, ", "));
  for (int64_t b = 0; b < B; ++b)
    BRAID_INPUT_CHECK(modality.empty() || has_row(batch, modality, b), "generate: row {} has no {}", b, modality);
  auto ex = nn::lm::render_chat(chat_, modality, modality.empty() ? 0 : tokens_, prompt_ids, nullptr);
  const auto dev = lm->model->embed_tokens->weight.device();
  auto ids = torch::tensor(ex.ids, torch::kLong).unsqueeze(0).expand({B, -1}).contiguous().to(dev);
  auto embeds = lm->embed(ids);
  if (!modality.empty())
    embeds = splice_slots(embeds, modality_tokens(modality, batch.mods.at(modality)), ex.slot_start, ex.slot_count);
  return {embeds, ids};
}

nn::lm::Generated MLLMImpl::generate(const Batch& batch, const GenerateRequest& r) {
  torch::NoGradGuard ng;
  auto p = render_prompt(batch, r.modality, r.prompt_ids);
  auto o = r.options;
  // the answer fits the context: max_tokens is cut to what max_seq leaves after the prompt
  const int64_t room = lm->options.max_seq - p.ids.size(1);
  BRAID_INPUT_CHECK(room >= 1, "generate: the prompt takes {} of the model's {} positions (lm.max_seq); shorten it",
                    p.ids.size(1), lm->options.max_seq);
  o.max_tokens = std::min(o.max_tokens, room);
  if (o.stop_tokens.empty()) o.stop_tokens = {chat_.eos};
  o.pad_id = chat_.pad;
  // an answer is text and <eos>: never padding, <bos>, the chat markers or a modality slot (none is ever a
  // target, but an untrained model may still rank them high)
  // (one [1, V] mask made here, not one per step)
  const int64_t V = lm->options.vocab_size;
  auto text_only = torch::ones({1, V}, torch::kBool);
  std::vector<int64_t> never{chat_.pad, chat_.bos, chat_.user, chat_.assistant};
  for (const auto& [m, id] : chat_.slots) never.push_back(id);
  for (auto id : never)
    if (id >= 0 && id < V) text_only[0][id] = false;
  auto user_allowed = o.allowed;
  o.allowed = [text_only, user_allowed](const std::vector<std::vector<int64_t>>& made, int64_t v) {
    auto rows = text_only.expand({static_cast<int64_t>(made.size()), v});
    return user_allowed ? user_allowed(made, v).to(torch::kBool).logical_and(rows) : rows;
  };
  return nn::lm::generate_from_embeds(lm, p.embeds, p.ids, o);
}

torch::Tensor MLLMImpl::prompt_logits(const Batch& batch, const GenerateRequest& r) {
  torch::NoGradGuard ng;
  auto p = render_prompt(batch, r.modality, r.prompt_ids);
  return lm->forward_embeds(p.embeds);
}

MLLMImpl::TaskForward MLLMImpl::task_forward(const Batch& batch, const nn::lm::ChatTask& task) {
  const int64_t B = batch.size();
  const auto dev = lm->model->embed_tokens->weight.device();
  std::vector<int64_t> rows;
  std::vector<nn::lm::ChatExample> ex;
  size_t T = 0;
  for (int64_t b = 0; b < B; ++b) {
    if (!task.modality.empty() && !has_row(batch, task.modality, b)) continue;
    std::vector<int64_t> answer;
    if (task.answer == "label") {
      if (!batch.labels.defined() || !class_text_.defined()) continue;
      const int64_t y = batch.labels[b].item<int64_t>();
      if (y < 0) continue;
      answer = row_ids(class_text_, class_lengths_, y);
    } else {
      if (!has_row(batch, "text", b)) continue;
      const auto& t = batch.mods.at("text");
      answer = row_ids(t.data, t.lengths, b);
    }
    if (answer.empty()) continue;
    rows.push_back(b);
    ex.push_back(
        nn::lm::render_chat(chat_, task.modality, task.modality.empty() ? 0 : tokens_, task.prompt_ids, &answer));
    T = std::max(T, ex.back().ids.size());
  }
  TaskForward f;
  if (rows.empty()) return f;
  BRAID_INPUT_CHECK(static_cast<int64_t>(T) <= lm->options.max_seq,
                    "task '{}': a training example is {} tokens (template, {} input tokens, prompt, answer, <eos>) but "
                    "model.lm.max_seq is {}: raise it, or lower data.text.max_tokens", task.name, T,
                    task.modality.empty() ? 0 : tokens_, lm->options.max_seq);
  const int64_t R = static_cast<int64_t>(rows.size());
  auto ids = torch::full({R, static_cast<int64_t>(T)}, chat_.pad, torch::kLong);
  auto target = torch::zeros({R, static_cast<int64_t>(T)}, torch::kBool);
  auto mask = torch::zeros({R, static_cast<int64_t>(T)}, torch::kLong);
  for (int64_t r = 0; r < R; ++r) {
    const auto& e = ex[r];
    const int64_t n = static_cast<int64_t>(e.ids.size());
    ids[r].narrow(0, 0, n).copy_(torch::tensor(e.ids, torch::kLong));
    target[r].narrow(0, 0, n).copy_(torch::tensor(std::vector<int64_t>(e.target.begin(), e.target.end())) != 0);
    mask[r].narrow(0, 0, n).fill_(1);
  }
  f.ids = ids.to(dev);
  f.target = target.to(dev);
  f.rows = torch::tensor(rows, torch::kLong);
  auto embeds = lm->embed(f.ids);
  if (!task.modality.empty()) {
    auto& mt = mod_tokens_[task.modality];
    if (!mt.defined()) mt = modality_tokens(task.modality, batch.mods.at(task.modality));
    embeds = splice_slots(embeds, mt.index_select(0, f.rows.to(dev)), ex[0].slot_start, ex[0].slot_count);
  }
  nn::lm::LMInputs in;
  in.attention_mask = mask.to(dev);
  f.logits = lm->forward_embeds(embeds, in);  // [R, T, V]
  return f;
}

torch::Tensor MLLMImpl::answer_loss(const TaskForward& f) {
  const int64_t T = f.ids.size(1), V = f.logits.size(2);
  auto nll = torch::nn::functional::cross_entropy(
      f.logits.narrow(1, 0, T - 1).reshape({-1, V}).to(torch::kFloat), f.ids.narrow(1, 1, T - 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto w = f.target.narrow(1, 1, T - 1).reshape({-1}).to(nll.dtype());
  return (nll * w).sum() / w.sum().clamp_min(1.0);
}

torch::Tensor MLLMImpl::objective(const Batch& batch) {
  terms_.clear();
  mod_tokens_.clear();
  torch::Tensor total;
  int64_t n_tasks = 0;
  for (const auto& task : chat_.tasks) {
    auto f = task_forward(batch, task);
    if (!f.logits.defined()) continue;
    auto l = answer_loss(f);
    terms_[task.name] = l.item<double>();
    total = total.defined() ? total + l : l;
    ++n_tasks;
  }
  mod_tokens_.clear();
  if (!total.defined())  // nothing to learn in this batch
    return torch::zeros({}, torch::TensorOptions().device(lm->model->embed_tokens->weight.device()).requires_grad(true));
  return total / static_cast<double>(n_tasks);
}

}  // namespace braid::models
