#include "braid/nn/lm/sample.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "braid/core/error.h"

namespace braid::nn::lm {

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The logits of the last position only, from final hidden states [B, t, D] -> [B, V] (generation reads no
// other). One row on the CPU as a matrix-vector product: sgemm would copy the [V, D] matrix every step.
torch::Tensor last_logits(CausalLM& model, const torch::Tensor& hidden) {
  auto h = hidden.select(1, hidden.size(1) - 1);  // [B, D]
  if (h.size(0) != 1 || !h.device().is_cpu()) return model->logits(h);
  const auto& w = model->lm_head ? model->lm_head->weight : model->model->embed_tokens->weight;  // no bias
  return at::mv(w, h.reshape({-1})).unsqueeze(0);
}
}  // namespace

torch::Tensor repetition_penalty(const torch::Tensor& logits, const torch::Tensor& previous, double penalty) {
  BRAID_INPUT_CHECK(penalty > 0.0 && std::isfinite(penalty), "repetition_penalty must be > 0, got {}", penalty);
  if (penalty == 1.0 || !previous.defined() || previous.numel() == 0) return logits.clone();
  auto idx = previous.to(logits.device(), torch::kLong);
  auto s = logits.gather(1, idx);
  s = torch::where(s < 0, s * penalty, s / penalty);
  return logits.scatter(1, idx, s);  // a repeated id writes the same value twice
}

torch::Tensor apply_temperature(const torch::Tensor& logits, double temperature) {
  BRAID_INPUT_CHECK(temperature > 0.0 && std::isfinite(temperature), "temperature must be > 0, got {}", temperature);
  return logits / temperature;
}

torch::Tensor top_k_filter(const torch::Tensor& logits, int64_t k) {
  if (k <= 0 || k >= logits.size(-1)) return logits.clone();
  auto kth = std::get<0>(logits.topk(k, -1)).narrow(-1, k - 1, 1);  // [B, 1]
  return logits.masked_fill(logits < kth, kNegInf);
}

torch::Tensor top_p_filter(const torch::Tensor& logits, double p) {
  BRAID_INPUT_CHECK(p > 0.0 && p <= 1.0, "top_p must be in (0, 1], got {}", p);
  if (p >= 1.0) return logits.clone();
  auto [sorted, order] = logits.sort(-1, /*descending=*/true);
  auto probs = torch::softmax(sorted.to(torch::kFloat), -1);
  // mass of the tokens strictly before each one; a token is dropped once that mass already reaches p
  auto before = probs.cumsum(-1) - probs;
  auto drop_sorted = before >= p;
  drop_sorted.narrow(-1, 0, 1).fill_(false);  // the most likely token always stays
  auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
  return logits.masked_fill(drop, kNegInf);
}

torch::Tensor greedy(const torch::Tensor& logits) { return logits.argmax(-1); }

torch::Tensor next_token(const torch::Tensor& logits, const torch::Tensor& previous, const SampleOptions& o,
                         at::Generator& gen) {
  TORCH_CHECK(logits.dim() == 2, "next_token: logits must be [B, V], got [", logits.sizes(), "]");
  auto l = o.repetition_penalty != 1.0 ? repetition_penalty(logits, previous, o.repetition_penalty) : logits;
  if (o.temperature == 0.0) return greedy(l);
  l = apply_temperature(l, o.temperature);
  l = top_k_filter(l, o.top_k);
  l = top_p_filter(l, o.top_p);
  auto probs = torch::softmax(l.to(torch::kCPU, torch::kFloat), -1);
  return torch::multinomial(probs, 1, /*replacement=*/false, gen).view({-1}).to(logits.device());
}

Generated generate(CausalLM& model, const torch::Tensor& prompt, const GenerateOptions& o) {
  BRAID_INPUT_CHECK(prompt.dim() == 2 && prompt.size(1) >= 1, "generate: the prompt must be [B, T] with T >= 1");
  torch::NoGradGuard ng;
  auto ids = prompt.to(model->model->embed_tokens->weight.device(), torch::kLong);
  return generate_from_embeds(model, model->embed(ids), ids, o);
}

Generated generate_from_embeds(CausalLM& model, const torch::Tensor& embeds, const torch::Tensor& prompt_ids,
                               const GenerateOptions& o) {
  BRAID_INPUT_CHECK(embeds.dim() == 3 && embeds.size(1) >= 1, "generate: the prompt must be [B, T, dim] with T >= 1");
  BRAID_INPUT_CHECK(prompt_ids.dim() == 2 && prompt_ids.size(0) == embeds.size(0) &&
                        prompt_ids.size(1) == embeds.size(1),
                    "generate: prompt ids must be [B, T] as the embeddings");
  BRAID_INPUT_CHECK(o.max_tokens >= 0, "generate: max_tokens must be >= 0, got {}", o.max_tokens);
  const int64_t B = embeds.size(0), T = embeds.size(1), max_seq = model->options.max_seq;
  const int64_t V = model->options.vocab_size;
  BRAID_INPUT_CHECK(T + o.max_tokens <= max_seq, "generate: prompt {} + max_tokens {} exceeds max_seq {}", T,
                    o.max_tokens, max_seq);
  BRAID_INPUT_CHECK(o.sample.temperature >= 0.0, "generate: temperature must be >= 0, got {}", o.sample.temperature);
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto dev = model->model->embed_tokens->weight.device();
  auto seq = prompt_ids.to(dev, torch::kLong);   // ids so far (repetition penalty)
  auto full = embeds.to(dev);                    // embeddings so far (uncached decoding)
  auto cache = model->new_cache();
  LMInputs in;
  if (o.use_cache) in.cache = &cache;

  // Which rows have stopped, kept on the CPU (the tokens are read there every step anyway); `done` is its
  // copy on the model's device, rebuilt only when a row stops.
  std::vector<uint8_t> stopped(static_cast<size_t>(B), 0);
  int64_t n_stopped = 0;
  torch::Tensor done;
  const bool penalty = o.sample.repetition_penalty != 1.0;  // only the penalty reads `seq`
  std::vector<torch::Tensor> out;
  std::vector<std::vector<int64_t>> made(static_cast<size_t>(B));
  torch::Tensor step_input = full;
  for (int64_t s = 0; s < o.max_tokens; ++s) {
    auto last = last_logits(model, model->hidden(o.use_cache ? step_input : full, in));  // [B, V]
    if (o.allowed) {
      auto ok = o.allowed(made, V).to(dev, torch::kBool);
      TORCH_CHECK(ok.dim() == 2 && ok.size(0) == B && ok.size(1) == last.size(1), "generate: allowed() must be [B, V]");
      ok = ok.logical_or(ok.any(1, true).logical_not());  // nothing allowed: leave the row free
      last = last.masked_fill(ok.logical_not(), kNegInf);
    }
    auto tok = next_token(last, seq, o.sample, gen);  // [B]
    if (n_stopped) tok = tok.masked_fill(done, o.pad_id);
    out.push_back(tok);
    auto tok_cpu = tok.to(torch::kCPU).contiguous();
    const int64_t* t = tok_cpu.data_ptr<int64_t>();
    bool newly_stopped = false;
    for (int64_t b = 0; b < B; ++b) {
      made[b].push_back(t[b]);
      if (!stopped[b] && std::find(o.stop_tokens.begin(), o.stop_tokens.end(), t[b]) != o.stop_tokens.end())
        stopped[b] = 1, ++n_stopped, newly_stopped = true;
    }
    if (newly_stopped)
      done = torch::from_blob(stopped.data(), {B}, torch::kUInt8).to(dev, torch::kBool);  // a copy
    if (penalty) seq = torch::cat({seq, tok.unsqueeze(1)}, 1);
    // tok comes from an argmax or a draw over [0, V): no range check (CausalLM::embed) needed
    step_input = model->model->embed_tokens->forward(tok.unsqueeze(1));
    if (!o.use_cache) full = torch::cat({full, step_input}, 1);
    const bool go_on = !o.on_step || o.on_step(s, tok_cpu);
    if (!go_on || n_stopped == B) break;
  }
  Generated g;
  g.tokens = out.empty() ? torch::empty({B, 0}, torch::kLong) : torch::stack(out, 1).cpu();
  // length = index of the first stop + 1, else all steps
  auto acc = g.tokens.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = acc.size(1);
    for (int64_t i = 0; i < acc.size(1); ++i)
      if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), acc[b][i]) != o.stop_tokens.end()) {
        n = i + 1;
        break;
      }
    g.lengths.push_back(n);
  }
  return g;
}

}  // namespace braid::nn::lm
