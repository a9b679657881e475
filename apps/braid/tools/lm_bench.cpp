#include "tools/lm_bench.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/nn/lm/causal_lm.h"
#include "braid/nn/lm/sample.h"
#include "braid/train/optim.h"
#include "tools/stats.h"

namespace braid::tools {

namespace {

using clock = std::chrono::steady_clock;
double since(clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); }

}  // namespace

nlohmann::json measure_lm(const LMBenchOptions& o) {
  BRAID_INPUT_CHECK(o.steps > 0 && o.repeats > 0 && o.warmup >= 0, "bench lm: steps and repeats must be positive");
  BRAID_INPUT_CHECK(o.seq >= 2 && o.batch >= 1, "bench lm: --seq must be >= 2 and --batch >= 1");
  BRAID_INPUT_CHECK(o.prompt >= 1 && o.new_tokens >= 1, "bench lm: --prompt and --new-tokens must be >= 1");
  auto wanted = [&](const std::string& c) {
    return o.cases == "all" || ("," + o.cases + ",").find("," + c + ",") != std::string::npos;
  };
  const int threads = configure_threads(o.threads);
  torch::manual_seed(o.seed);

  nn::lm::LMOptions lo;
  lo.vocab_size = o.vocab;
  lo.dim = o.dim;
  lo.layers = o.layers;
  lo.heads = o.heads;
  lo.kv_heads = o.kv_heads;
  lo.hidden = o.hidden;
  lo.tie_embeddings = o.tie;
  lo.max_seq = std::max(o.seq, o.prompt + o.new_tokens);
  lo.check("bench lm", "");
  nn::lm::CausalLM lm(lo);
  int64_t params = 0;
  for (const auto& p : lm->parameters()) params += p.numel();

  // ---- training: forward, next-token cross-entropy, backward, AdamW (as braid's trainer: the per-tensor loop on CPU)
  auto ids = torch::randint(o.vocab, {o.batch, o.seq}, torch::kLong);
  const auto plist = lm->parameters();
  train::MultiTensorAdamW opt(plist, torch::optim::AdamWOptions(1e-3).weight_decay(0.01), "auto");
  double loss_v = 0;
  auto step = [&] {
    auto logits = lm->forward(ids.narrow(1, 0, o.seq - 1));  // [B, T-1, V]
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, o.vocab}),
                                                     ids.narrow(1, 1, o.seq - 1).reshape({-1}));
    train::zero_grads(plist);
    loss.backward();
    opt.step();
    return loss;
  };
  lm->train();
  for (int64_t i = 0; i < o.warmup && wanted("train"); ++i) step();
  std::vector<double> train_rates;
  const double tokens_per_step = static_cast<double>(o.batch * o.seq);
  for (int64_t r = 0; r < o.repeats && wanted("train"); ++r) {
    check_interrupt();
    auto t0 = clock::now();
    torch::Tensor loss;
    for (int64_t i = 0; i < o.steps; ++i) loss = step();
    train_rates.push_back(o.steps * tokens_per_step / since(t0));
    loss_v = loss.item<double>();
  }

  // ---- generation: greedy, no stop tokens (always new_tokens per row)
  lm->eval();
  struct Case {
    std::string key;
    int64_t B;
    bool cache;
  };
  const std::vector<Case> cases{{"gen_tokens_per_s_b1_cache", 1, true},
                                {"gen_tokens_per_s_b1_nocache", 1, false},
                                {"gen_tokens_per_s_b8_cache", 8, true},
                                {"gen_tokens_per_s_b8_nocache", 8, false}};
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json runs = nlohmann::json::array();
  for (int64_t r = 0; r < o.repeats; ++r)
    runs.push_back(train_rates.empty() ? nlohmann::json::object() : nlohmann::json{{"train_tokens_per_s", train_rates[r]}});
  nlohmann::json checks = nlohmann::json::object();
  // one prompt per batch size, shared by the cached and the uncached runs (same tokens expected)
  const auto prompt1 = torch::randint(o.vocab, {1, o.prompt}, torch::kLong);
  const auto prompt8 = torch::randint(o.vocab, {8, o.prompt}, torch::kLong);
  for (const auto& c : cases) {
    const auto& prompt = c.B == 1 ? prompt1 : prompt8;
    if (!wanted(c.key.substr(17))) continue;
    nn::lm::GenerateOptions g;
    g.max_tokens = o.new_tokens;
    g.use_cache = c.cache;
    nn::lm::Generated last;
    for (int64_t i = 0; i < std::max<int64_t>(1, o.warmup); ++i) last = nn::lm::generate(lm, prompt, g);
    BRAID_INPUT_CHECK(last.tokens.size(1) == o.new_tokens, "bench lm: generate made {} tokens, not {}",
                      last.tokens.size(1), o.new_tokens);
    checks[c.key] = last.tokens.sum().item<int64_t>();
    std::vector<double> rates;
    for (int64_t r = 0; r < o.repeats; ++r) {
      check_interrupt();
      auto t0 = clock::now();
      for (int64_t i = 0; i < o.steps; ++i) nn::lm::generate(lm, prompt, g);
      rates.push_back(static_cast<double>(o.steps * c.B * o.new_tokens) / since(t0));
      runs[r][c.key] = rates.back();
    }
    out[c.key] = median(rates);
  }
  // ---- inference forward (only when --cases names it): logits of every position of [B, seq] random ids at
  // B = 1 and B = batch, no gradient -> tokens/s (the ONNX Runtime comparison of bench/import_speed_ort.sh)
  if (("," + o.cases + ",").find(",forward,") != std::string::npos) {
    torch::NoGradGuard ng;
    for (int64_t B : {int64_t{1}, o.batch}) {
      const auto x = torch::randint(o.vocab, {B, o.seq}, torch::kLong);
      for (int64_t i = 0; i < std::max<int64_t>(1, o.warmup); ++i) lm->forward(x);
      std::vector<double> rates;
      for (int64_t r = 0; r < o.repeats; ++r) {
        check_interrupt();
        auto t0 = clock::now();
        for (int64_t i = 0; i < o.steps; ++i) lm->forward(x);
        rates.push_back(static_cast<double>(o.steps * B * o.seq) / since(t0));
      }
      out["forward_tokens_per_s_b" + std::to_string(B)] = median(rates);
      if (B == o.batch) break;  // batch 1: one entry
    }
  }
  if (!train_rates.empty()) out["train_tokens_per_s"] = median(train_rates);
  out["runs"] = runs;
  out["parameters"] = params;
  out["threads"] = threads;
  out["adamw"] = opt.impl();
  out["loss"] = loss_v;
  out["token_sums"] = checks;  // sum of the generated ids of the last warm-up call (same seed: same tokens)
  out["config"] = {{"dim", o.dim},       {"layers", o.layers}, {"heads", o.heads},   {"kv_heads", o.kv_heads},
                   {"hidden", o.hidden}, {"vocab", o.vocab},   {"tie", o.tie},       {"seq", o.seq},
                   {"batch", o.batch},   {"prompt", o.prompt}, {"new_tokens", o.new_tokens},
                   {"steps", o.steps},   {"warmup", o.warmup}, {"repeats", o.repeats}, {"seed", o.seed}};
  out["libtorch"] = TORCH_VERSION;
  return out;
}

}  // namespace braid::tools
