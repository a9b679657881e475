// The Llama-family LM of nn/lm: RMSNorm, RoPE, SwiGLU, grouped-query attention and whole-model logits
// against scripts/make_goldens.py (a hand-written float64 reference, no transformers package), Hugging Face
// parameter names and strict loading, KV-cache equivalence, sampling transforms by hand, and generation
// determinism.
#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/nn/lm/causal_lm.h"
#include "braid/nn/lm/sample.h"
#include "test_util.h"

using braid::test::AllClose;
using namespace braid::nn::lm;

namespace {

constexpr double kTol = 1e-5;  // fp32 against the float64 reference

// The two models of make_goldens.py (LM_LLAMA, LM_QWEN).
LMOptions llama_options() {
  LMOptions o;
  o.vocab_size = 32, o.dim = 24, o.layers = 2, o.heads = 4, o.kv_heads = 2, o.hidden = 40;
  o.rope_theta = 10000.0, o.norm_eps = 1e-5, o.max_seq = 64, o.tie_embeddings = false, o.attention_bias = false;
  return o;
}
LMOptions qwen_options() {
  LMOptions o;
  o.vocab_size = 32, o.dim = 24, o.layers = 1, o.heads = 4, o.kv_heads = 1, o.hidden = 40;
  o.rope_theta = 1e6, o.norm_eps = 1e-6, o.max_seq = 64, o.tie_embeddings = true, o.attention_bias = true;
  return o;
}

const braid::TensorMap& io() {
  static const braid::TensorMap m = braid::read_safetensors(braid::test::golden("lm_golden.safetensors"));
  return m;
}
torch::Tensor g(const std::string& name) {
  auto it = io().find(name);
  if (it == io().end()) throw std::runtime_error("lm_golden.safetensors has no " + name);
  return it->second;
}

CausalLM load(const LMOptions& o, const std::string& fixture) {
  CausalLM m(o);
  const auto path = braid::test::golden(fixture);
  braid::load_module_tensors(*m, braid::read_safetensors(path), path);
  m->eval();
  return m;
}
CausalLM llama() { return load(llama_options(), "lm_llama_tiny.safetensors"); }

DecoderLayerImpl& layer0(CausalLM& m) { return *m->model->layers->ptr<DecoderLayerImpl>(0); }

// Hugging Face LlamaForCausalLM state-dict names for `o`.
std::set<std::string> hf_names(const LMOptions& o) {
  std::set<std::string> s{"model.embed_tokens.weight", "model.norm.weight"};
  if (!o.tie_embeddings) s.insert("lm_head.weight");
  for (int64_t i = 0; i < o.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* n : {"q", "k", "v", "o"}) s.insert(p + "self_attn." + n + "_proj.weight");
    if (o.attention_bias)
      for (const char* n : {"q", "k", "v"}) s.insert(p + "self_attn." + n + "_proj.bias");
    for (const char* n : {"gate", "up", "down"}) s.insert(p + "mlp." + n + "_proj.weight");
    s.insert(p + "input_layernorm.weight");
    s.insert(p + "post_attention_layernorm.weight");
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- goldens

TEST(LMGolden, RMSNorm) {
  auto m = llama();
  torch::NoGradGuard ng;
  EXPECT_TRUE(AllClose(layer0(m).input_layernorm->forward(g("rmsnorm_x")), g("rmsnorm_y"), kTol, "rmsnorm"));
}

TEST(LMGolden, RotaryHalvesAtArbitraryPositions) {
  const auto o = llama_options();
  Rotary rot(o.head_dim(), o.rope_theta, o.max_seq);
  auto q = g("rope_q"), k = g("rope_k");
  auto [cos, sin] = rot.lookup(g("rope_pos"), q);
  EXPECT_TRUE(AllClose(apply_rotary(q, cos, sin), g("rope_q_out"), kTol, "rope q"));
  EXPECT_TRUE(AllClose(apply_rotary(k, cos, sin), g("rope_k_out"), kTol, "rope k"));
  // a position at max_seq is an input error, not a silent out-of-range read
  EXPECT_THROW(rot.lookup(torch::tensor({{0, 64}}, torch::kLong), q), braid::InputError);
}

TEST(LMGolden, SwiGLU) {
  auto m = llama();
  torch::NoGradGuard ng;
  EXPECT_TRUE(AllClose(layer0(m).mlp->forward(g("swiglu_x")), g("swiglu_y"), kTol, "swiglu"));
}

TEST(LMGolden, GroupedQueryAttentionCausal) {
  auto m = llama();
  torch::NoGradGuard ng;
  auto x = g("attn_x");
  const int64_t B = x.size(0), T = x.size(1);
  auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T});
  auto [cos, sin] = m->model->rotary.lookup(pos, x);
  auto bias = causal_bias(B, T, 0, {}, x.options());
  EXPECT_TRUE(AllClose(layer0(m).self_attn->forward(x, cos, sin, bias), g("attn_y"), kTol, "gqa attention"));
}

TEST(LMGolden, LlamaLogits) {
  auto m = llama();
  torch::NoGradGuard ng;
  EXPECT_TRUE(AllClose(m->forward(g("llama_ids")), g("llama_logits"), kTol, "llama logits"));
}

TEST(LMGolden, LeftPaddedLogitsAtRealTokens) {
  auto m = llama();
  torch::NoGradGuard ng;
  LMInputs in;
  in.attention_mask = g("llama_pad_mask");
  auto got = m->forward(g("llama_ids"), in), want = g("llama_pad_logits");
  // row 0 has no padding; row 1's first two steps are padding (their outputs are not meaningful)
  EXPECT_TRUE(AllClose(got[0], want[0], kTol, "padded batch, row 0"));
  EXPECT_TRUE(AllClose(got[1].slice(0, 2), want[1].slice(0, 2), kTol, "padded batch, row 1 real tokens"));
  // and the real tokens of row 1 do not see the padded ones: same logits as the row alone, unpadded
  auto alone = m->forward(g("llama_ids")[1].slice(0, 2).unsqueeze(0));
  EXPECT_TRUE(AllClose(got[1].slice(0, 2), alone[0], kTol, "padded row vs the row alone"));
}

TEST(LMInputs, DefaultPositionsCountRealTokens) {
  auto mask = torch::tensor({{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {0, 1, 0, 1, 1}}, torch::kLong);
  EXPECT_TRUE(torch::equal(default_positions(3, 5, 0, mask, torch::kCPU),
                           torch::tensor({{0, 0, 0, 1, 2}, {0, 1, 2, 3, 4}, {0, 0, 0, 1, 2}}, torch::kLong)));
  // the last 2 of 5 after 3 cached steps
  EXPECT_TRUE(torch::equal(default_positions(3, 2, 3, mask, torch::kCPU),
                           torch::tensor({{1, 2}, {3, 4}, {1, 2}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(default_positions(1, 2, 3, {}, torch::kCPU), torch::tensor({{3, 4}}, torch::kLong)));
}

TEST(LMGolden, QwenStyleTiedEmbeddingsAndQkvBias) {
  auto m = load(qwen_options(), "lm_qwen_tiny.safetensors");
  torch::NoGradGuard ng;
  EXPECT_TRUE(AllClose(m->forward(g("qwen_ids")), g("qwen_logits"), kTol, "qwen-style logits"));
}

TEST(LMTrain, EveryParameterGetsAGradientFromTheNextTokenLoss) {
  for (const auto& o : {llama_options(), qwen_options()}) {
    torch::manual_seed(5);
    CausalLM m(o);
    auto ids = torch::randint(0, o.vocab_size, {2, 6}, torch::kLong);
    auto logits = m->forward(ids.slice(1, 0, 5));
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, o.vocab_size}), ids.slice(1, 1).reshape({-1}));
    loss.backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    }
  }
}

// ---------------------------------------------------------------- names and strict loading

TEST(LMLoad, ParameterNamesAreHuggingFaceStateDictNames) {
  for (const auto& o : {llama_options(), qwen_options()}) {
    CausalLM m(o);
    std::set<std::string> names;
    for (const auto& p : m->named_parameters()) names.insert(p.key());
    EXPECT_EQ(names, hf_names(o)) << "tie " << o.tie_embeddings << " bias " << o.attention_bias;
    EXPECT_EQ(m->named_buffers().size(), 0u);  // RoPE tables are not state
  }
  // the fixtures hold exactly those names
  std::set<std::string> file;
  for (const auto& [k, v] : braid::read_safetensors(braid::test::golden("lm_llama_tiny.safetensors"))) file.insert(k);
  EXPECT_EQ(file, hf_names(llama_options()));
}

TEST(LMLoad, MissingMisshapedOrUnknownTensorIsAnError) {
  const auto path = braid::test::golden("lm_llama_tiny.safetensors");
  const auto full = braid::read_safetensors(path);
  {
    auto t = full;
    t.erase("model.layers.1.mlp.up_proj.weight");
    CausalLM m(llama_options());
    braid::test::ExpectInputError([&] { braid::load_module_tensors(*m, t, path); }, path,
                                  "model.layers.1.mlp.up_proj.weight");
  }
  {
    auto t = full;
    t["model.layers.0.self_attn.k_proj.weight"] = torch::zeros({24, 24});  // q-sized: an MHA checkpoint
    CausalLM m(llama_options());
    braid::test::ExpectInputError([&] { braid::load_module_tensors(*m, t, path); }, path,
                                  "model.layers.0.self_attn.k_proj.weight");
  }
  {
    // a checkpoint with lm_head into a tied model
    auto t = braid::read_safetensors(braid::test::golden("lm_qwen_tiny.safetensors"));
    t["lm_head.weight"] = torch::zeros({32, 24});
    CausalLM m(qwen_options());
    braid::test::ExpectInputError([&] { braid::load_module_tensors(*m, t, path); }, path, "lm_head.weight");
  }
  {
    // the untied file into a tied model: lm_head.weight is unknown there
    CausalLM m([] { auto o = llama_options(); o.tie_embeddings = true; return o; }());
    braid::test::ExpectInputError([&] { braid::load_module_tensors(*m, full, path); }, path, "lm_head.weight");
  }
}

TEST(LMOptions, BadOptionsAreInputErrorsNamingTheRecipeKey) {
  auto expect = [](const std::string& yaml, const std::string& key) {
    auto c = braid::Config::from_string(yaml, "lm_recipe.yaml").at("model").at("lm");
    braid::test::ExpectInputError([&] { LMOptions::from_config(c); }, "lm_recipe.yaml", "'model.lm." + key + "'");
  };
  expect("model: {lm: {dim: 30, heads: 4}}", "heads");              // 4 does not divide 30
  expect("model: {lm: {dim: 24, heads: 8}}", "heads");              // head_dim 3 is odd
  expect("model: {lm: {dim: 24, heads: 4, kv_heads: 3}}", "kv_heads");
  expect("model: {lm: {vocab_size: 0}}", "vocab_size");
  expect("model: {lm: {norm_eps: -1e-5}}", "norm_eps");
  expect("model: {lm: {max_seq: 0}}", "max_seq");
  expect("model: {lm: {hidden: -4}}", "hidden");
  expect("model: {lm: {layers: 0}}", "layers");
  expect("model: {lm: {rope_theta: 0.5}}", "rope_theta");
  // a good map reads every key
  auto c = braid::Config::from_string(
      "lm: {vocab_size: 50, dim: 32, layers: 2, heads: 4, kv_heads: 2, hidden: 64, rope_theta: 500000.0, "
      "norm_eps: 1.0e-6, max_seq: 128, tie_embeddings: true, attention_bias: true}",
      "ok.yaml").at("lm");
  auto o = LMOptions::from_config(c);
  EXPECT_EQ(o.kv_heads, 2);
  EXPECT_EQ(o.head_dim(), 8);
  EXPECT_DOUBLE_EQ(o.rope_theta, 500000.0);
  EXPECT_TRUE(o.tie_embeddings && o.attention_bias);
  EXPECT_NO_THROW(c.check_all_used());
}

// ---------------------------------------------------------------- KV cache

TEST(LMCache, PromptThenCachedStepsEqualTheFullForward) {
  auto m = llama();
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  auto seq = torch::randint(0, 32, {2, 11}, torch::kLong);
  auto full = m->forward(seq);  // [2, 11, 32]
  auto cache = m->new_cache();
  LMInputs in;
  in.cache = &cache;
  // prompt of 5, a chunk of 2, then 4 single steps
  std::vector<torch::Tensor> parts{m->forward(seq.slice(1, 0, 5), in), m->forward(seq.slice(1, 5, 7), in)};
  EXPECT_EQ(cache.length(), 7);
  for (int64_t t = 7; t < 11; ++t) parts.push_back(m->forward(seq.slice(1, t, t + 1), in));
  EXPECT_EQ(cache.length(), 11);
  EXPECT_EQ(cache.k[1].sizes(), (std::vector<int64_t>{2, 2, 11, 6}));  // [B, kv_heads, T, head_dim]
  EXPECT_TRUE(AllClose(torch::cat(parts, 1), full, kTol, "cached vs full forward"));
}

TEST(LMCache, LeftPaddedPromptThenCachedStepsEqualTheFullForward) {
  auto m = llama();
  torch::NoGradGuard ng;
  torch::manual_seed(4);
  auto seq = torch::randint(0, 32, {2, 9}, torch::kLong);
  auto mask = torch::ones({2, 9}, torch::kLong);
  mask[1].slice(0, 0, 3).fill_(0);  // row 1: three pad steps in front of a 2-token prompt
  LMInputs whole;
  whole.attention_mask = mask;
  auto full = m->forward(seq, whole);
  auto cache = m->new_cache();
  LMInputs in;
  in.cache = &cache;
  std::vector<torch::Tensor> parts;
  for (int64_t t : {5, 6, 7, 8, 9}) {  // the mask grows with the sequence: [B, P + T]
    const int64_t from = cache.length();
    in.attention_mask = mask.slice(1, 0, t);
    parts.push_back(m->forward(seq.slice(1, from, t), in));
  }
  auto got = torch::cat(parts, 1);
  EXPECT_TRUE(AllClose(got[0], full[0], kTol, "padded cache, row 0"));
  EXPECT_TRUE(AllClose(got[1].slice(0, 3), full[1].slice(0, 3), kTol, "padded cache, row 1 real tokens"));
}

TEST(LMCache, GreedyGenerationSameTokensWithAndWithoutCache) {
  auto m = llama();
  auto prompt = g("llama_ids").slice(1, 0, 4);  // [2, 4]
  GenerateOptions o;
  o.max_tokens = 20;
  o.use_cache = true;
  auto cached = generate(m, prompt, o);
  o.use_cache = false;
  auto plain = generate(m, prompt, o);
  ASSERT_EQ(cached.tokens.sizes(), (std::vector<int64_t>{2, 20}));
  EXPECT_TRUE(torch::equal(cached.tokens, plain.tokens)) << cached.tokens << "\n" << plain.tokens;
  // greedy = the argmax of the full forward over prompt + generated, step by step
  torch::NoGradGuard ng;
  auto seq = torch::cat({prompt, cached.tokens}, 1);
  auto want = m->forward(seq.slice(1, 0, -1)).argmax(-1).slice(1, 3);  // predictions after each prefix
  EXPECT_TRUE(torch::equal(cached.tokens, want));
}

// ---------------------------------------------------------------- generation

TEST(LMGenerate, SameSeedSameTokensDifferentSeedDifferentTokens) {
  torch::manual_seed(11);
  auto o = llama_options();
  CausalLM m(o);  // random N(0, 0.02) weights: temperature-1 samples are close to uniform over 32 tokens
  auto prompt = torch::tensor({{1, 2, 3}, {4, 5, 6}}, torch::kLong);
  GenerateOptions go;
  go.max_tokens = 16;
  go.sample.temperature = 1.0;
  go.seed = 7;
  auto a = generate(m, prompt, go), b = generate(m, prompt, go);
  EXPECT_TRUE(torch::equal(a.tokens, b.tokens));
  go.seed = 8;
  auto c = generate(m, prompt, go);
  EXPECT_FALSE(torch::equal(a.tokens, c.tokens)) << a.tokens << "\n" << c.tokens;
  // top-k 1 is greedy whatever the seed
  go.sample.top_k = 1;
  auto k1 = generate(m, prompt, go);
  go.sample = {};
  EXPECT_TRUE(torch::equal(k1.tokens, generate(m, prompt, go).tokens));
}

TEST(LMGenerate, StopTokensEndRowsAndPadTheRest) {
  auto m = llama();
  auto prompt = g("llama_ids").slice(1, 0, 4);
  GenerateOptions o;
  o.max_tokens = 10;
  auto free = generate(m, prompt, o);
  // stop at row 0's third token: row 0 ends there, row 1 runs on unless it emits it too
  const int64_t stop = free.tokens[0][2].item<int64_t>();
  o.stop_tokens = {stop};
  o.pad_id = 31;
  auto s = generate(m, prompt, o);
  int64_t first0 = 0;
  while (free.tokens[0][first0].item<int64_t>() != stop) ++first0;
  EXPECT_EQ(s.lengths[0], first0 + 1);
  for (int64_t i = first0 + 1; i < s.tokens.size(1); ++i) EXPECT_EQ(s.tokens[0][i].item<int64_t>(), 31);
  EXPECT_TRUE(torch::equal(s.tokens[0].slice(0, 0, first0 + 1), free.tokens[0].slice(0, 0, first0 + 1)));
  // too long for max_seq
  o.max_tokens = 61;
  EXPECT_THROW(generate(m, prompt, o), braid::InputError);
}

// ---------------------------------------------------------------- sampling transforms by hand

TEST(LMSample, TransformsByHand) {
  auto l = torch::tensor({{1.0f, 3.0f, -2.0f, 3.0f, 0.5f}});
  EXPECT_EQ(greedy(l).item<int64_t>(), 1);  // lowest id of the tied maxima
  auto inf = -std::numeric_limits<float>::infinity();
  EXPECT_TRUE(torch::equal(top_k_filter(l, 2), torch::tensor({{inf, 3.0f, inf, 3.0f, inf}})));
  EXPECT_TRUE(torch::equal(top_k_filter(l, 3), torch::tensor({{1.0f, 3.0f, inf, 3.0f, inf}})));
  EXPECT_TRUE(torch::equal(top_k_filter(l, 0), l));
  EXPECT_TRUE(torch::allclose(apply_temperature(l, 0.5), l * 2.0));
  // repetition penalty: positive / p, negative * p; id 1 twice is penalised once
  auto r = repetition_penalty(l, torch::tensor({{1, 2, 1}}, torch::kLong), 2.0);
  EXPECT_TRUE(torch::allclose(r, torch::tensor({{1.0f, 1.5f, -4.0f, 3.0f, 0.5f}})));
  // top-p on probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625
  auto p = torch::log(torch::tensor({{0.0625f, 0.5f, 0.125f, 0.25f, 0.0625f}}));
  auto keep = [&](double pp) { return top_p_filter(p, pp).isfinite().to(torch::kLong); };
  EXPECT_TRUE(torch::equal(keep(0.5), torch::tensor({{0, 1, 0, 0, 0}})));   // 0.5 alone reaches 0.5
  EXPECT_TRUE(torch::equal(keep(0.6), torch::tensor({{0, 1, 0, 1, 0}})));   // 0.75 >= 0.6
  EXPECT_TRUE(torch::equal(keep(0.8), torch::tensor({{0, 1, 1, 1, 0}})));   // 0.875 >= 0.8
  EXPECT_TRUE(torch::equal(keep(0.1), torch::tensor({{0, 1, 0, 0, 0}})));   // at least one token
  EXPECT_TRUE(torch::equal(keep(1.0), torch::ones({1, 5}, torch::kLong)));
  EXPECT_THROW(top_p_filter(p, 0.0), braid::InputError);
  EXPECT_THROW(apply_temperature(p, 0.0), braid::InputError);
  // a draw only ever picks a kept token
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  SampleOptions so;
  so.temperature = 1.0;
  so.top_p = 0.6;
  for (int i = 0; i < 50; ++i) {
    auto t = next_token(p, {}, so, gen).item<int64_t>();
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}
