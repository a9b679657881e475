#include "braid/run/generator.h"

#include <torch/torch.h>

#include <cmath>

#include "braid/core/error.h"
#include "braid/run/chat.h"
#include "braid/run/run_dir.h"

namespace braid::run {

Generator::Generator(const std::string& run, const std::string& weights, const std::string& device)
    : p_(open_run(run, weights, device)) {
  const auto caps = p_.model->capabilities();
  BRAID_INPUT_CHECK(p_.task == Task::Generate && (caps.generates || caps.draws),
                    "{}: run was trained with a task other than 'generate'; it writes no text", run);
  p_.model->eval();
  plain_ = p_.recipe.at("model").get<std::string>("name", "") == "lm";
  draws_ = caps.draws;
  if (plain_ || draws_) {  // no chat template: the tokenizer's own specials  // a plain causal LM: the prompt is continued as the tokenizer encodes it, up to its eos
    spec_.pad = std::max(p_.tokenizer->pad_id(), 0);
    spec_.bos = p_.tokenizer->bos_id();
    spec_.eos = p_.tokenizer->eos_id();
  } else {
    spec_ = chat_spec(*p_.tokenizer, p_.recipe.at("model"));
  }
  for (const auto& m : caps.embeds)
    if (m == "image" || m == "audio") inputs_.push_back(m);
  if (draws_ && caps.generates) inputs_ = {"image"};  // early fusion: it reads an image's codes and names it
}

Generator::Prepared Generator::prepare(const GenerateRequest& r) {
  Prepared out;
  const std::string& m = r.input.modality;
  BRAID_INPUT_CHECK(m.empty() || std::find(inputs_.begin(), inputs_.end(), m) != inputs_.end(),
                    "{}: this run reads no {} (it reads {})", r.input.name.empty() ? "input" : r.input.name, m,
                    inputs_.empty() ? std::string("no input") : fmt::format("{}", fmt::join(inputs_, ", ")));
  std::string prompt = r.prompt;
  if (draws_) {
    BRAID_INPUT_CHECK(m == "image" && r.task.empty() && prompt.empty(),
                      "this run draws images from text (--out FILE.png with --text) and names an image (--image "
                      "FILE, no prompt or task)");
    out.request.modality = m;
    out.request.options = r.options;
    if (out.request.options.stop_tokens.empty() && spec_.eos >= 0) out.request.options.stop_tokens = {spec_.eos};
    out.request.options.pad_id = spec_.pad;
    out.batch = query_batch(m, {preprocess_query(*p_.pre, r.input)}).to(p_.device);
    return out;
  }
  if (plain_) {
    BRAID_INPUT_CHECK(m.empty() && r.task.empty() && !prompt.empty(),
                      "this run is a language model (model 'lm'): give the text to continue (--text), no input or task");
    out.prompt = prompt;
    auto ids = p_.tokenizer->encode(prompt, 0, /*add_specials=*/true);
    out.request.prompt_ids.assign(ids.begin(), ids.end());
    out.request.options = r.options;
    if (out.request.options.stop_tokens.empty() && spec_.eos >= 0) out.request.options.stop_tokens = {spec_.eos};
    out.request.options.pad_id = spec_.pad;
    // a model's vocab_size may exceed its tokenizer's (padding rows): never emit an id it cannot decode
    const int64_t tv = p_.tokenizer->vocab_size();
    auto user_allowed = out.request.options.allowed;
    out.request.options.allowed = [tv, user_allowed](const std::vector<std::vector<int64_t>>& made, int64_t v) {
      auto ok = torch::ones({static_cast<int64_t>(made.size()), v}, torch::kBool);
      if (tv < v) ok.narrow(1, tv, v - tv).fill_(false);
      return user_allowed ? user_allowed(made, v).to(torch::kBool).logical_and(ok) : ok;
    };
    out.batch.index = {0};
    return out;
  }
  if (prompt.empty() || !r.task.empty()) {
    const auto& t = find_task(spec_, r.task, m);
    BRAID_INPUT_CHECK(r.task.empty() || t.modality == m, "task '{}' reads {}, but the input is {}", t.name,
                      t.modality.empty() ? "nothing" : t.modality, m.empty() ? "none" : m);
    out.task = t.name;
    if (prompt.empty()) prompt = t.prompt;
  }
  if (out.task.empty())  // a prompt of the run's own tasks names that task
    for (const auto& t : spec_.tasks)
      if (t.modality == m && t.prompt == prompt) out.task = t.name;
  out.prompt = prompt;
  prompt = text_prefix(prompt, p_.pre->options().text.max_tokens);
  out.request.modality = m;
  out.request.prompt_ids = prompt_ids(*p_.tokenizer, prompt);
  out.request.options = r.options;
  if (m.empty()) {
    out.batch.index = {0};
  } else {
    out.batch = query_batch(m, {preprocess_query(*p_.pre, r.input)}).to(p_.device);
  }
  return out;
}

GenerateAnswer Generator::generate(const GenerateRequest& r, const std::function<bool(const std::string&)>& on_text) {
  return generate(prepare(r), on_text);
}

GenerateAnswer Generator::generate(Prepared pr, const std::function<bool(const std::string&)>& on_text) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> made;
  std::string shown;
  bool stopped = false;
  if (on_text)
    pr.request.options.on_step = [&](int64_t, const torch::Tensor& tok) {
      const int64_t id = tok[0].item<int64_t>();
      if (id == spec_.eos) return true;
      made.push_back(id);
      const std::string now = decode_answer(*p_.tokenizer, made, spec_.eos);
      // sentencepiece prints a word's leading space once the next piece arrives: send only what grew
      if (now.size() > shown.size() && now.compare(0, shown.size(), shown) == 0) {
        const std::string delta = now.substr(shown.size());
        shown = now;
        return on_text(delta);
      }
      return true;
    };
  auto g = p_.model->generate(pr.batch, pr.request);
  GenerateAnswer a;
  a.task = pr.task;
  a.prompt = pr.prompt;
  auto acc = g.tokens.accessor<int64_t, 2>();
  for (int64_t i = 0; i < g.lengths[0]; ++i) {
    if (acc[0][i] == spec_.eos) {
      stopped = true;
      break;
    }
    a.ids.push_back(acc[0][i]);
  }
  a.stopped = stopped;
  a.text = decode_answer(*p_.tokenizer, a.ids, spec_.eos);
  if (on_text && a.text.size() > shown.size() && a.text.compare(0, shown.size(), shown) == 0)
    on_text(a.text.substr(shown.size()));  // whatever the last step left unsent
  return a;
}

torch::Tensor Generator::draw(const DrawRequest& r) {
  BRAID_INPUT_CHECK(draws_, "this run does not draw images (text -> image needs a run of model early_fusion)");
  BRAID_INPUT_CHECK(r.n >= 1 && r.n <= 64, "draw: n must be in [1, 64], got {}", r.n);
  BRAID_INPUT_CHECK(std::isfinite(r.guidance) && r.guidance >= 0 && r.guidance <= 100,
                    "draw: guidance must be in [0, 100], got {}", r.guidance);
  const std::string text = text_prefix(r.text, p_.pre->options().text.max_tokens);
  auto ids = prompt_ids(*p_.tokenizer, text);
  BRAID_INPUT_CHECK(!ids.empty(), "draw: the text is empty (say what to draw, e.g. --text \"red heart\")");
  models::ModelImpl::DrawRequest d;
  d.prompts = {ids};
  d.per_prompt = r.n;
  d.guidance = r.guidance;
  d.sample = r.sample;
  d.seed = r.seed;
  d.use_cache = r.use_cache;
  std::lock_guard<std::mutex> lock(mu_);
  return p_.model->draw(d).to(torch::kCPU);
}

torch::Tensor Generator::prompt_logits(const GenerateRequest& r) {
  auto pr = prepare(r);
  std::lock_guard<std::mutex> lock(mu_);
  return p_.model->prompt_logits(pr.batch, pr.request)[0].to(torch::kCPU);
}

}  // namespace braid::run
