// Hugging Face Llama-family causal LMs into braid's LM backbone (run/hf_lm.h) against
// scripts/hf/make_lm_fixtures.py (transformers 4.40.2): tiny random LlamaForCausalLM (untied, rope_scaling
// linear; untied, rope_scaling llama3), a SmolLM2-like tied one and a Qwen2ForCausalLM (q/k/v biases), their
// logits for fixed ids and greedy continuations; the config mapping; and refusals naming the key or tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/nn/lm/sample.h"
#include "braid/run/hf_lm.h"
#include "braid/run/run_dir.h"
#include "test_util.h"

using braid::test::AllClose;
using braid::test::ExpectInputError;
using braid::test::TempDir;
using braid::test::ToyOptions;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) { return std::string(BRAID_FIXTURES) + "/hf/lm/" + name; }

json read_config(const std::string& name) {
  return json::parse(braid::test::read_file(fixture(name) + "/config.json"));
}

// A copy of fixture `name` in `dir` with its config.json replaced by `cfg` and its tensors by `tensors`.
void write_model(const TempDir& dir, const json& cfg, const braid::TensorMap& tensors) {
  dir.file("config.json", cfg.dump(1));
  braid::write_safetensors(dir.file("model.safetensors"), tensors);
}

class HFLMParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HFLMParity, LogitsAndGreedyMatchTransformers) {
  const std::string name = GetParam();
  auto lm = braid::run::load_hf_lm(fixture(name));
  auto ref = braid::read_safetensors(fixture(name) + "/reference.safetensors");
  torch::NoGradGuard ng;
  auto logits = lm->forward(ref.at("ids"));
  EXPECT_TRUE(AllClose(logits, ref.at("logits"), 1e-4, name + " logits"));

  braid::nn::lm::GenerateOptions g;
  g.max_tokens = ref.at("greedy").size(1);
  for (bool cache : {true, false}) {
    g.use_cache = cache;
    auto out = braid::nn::lm::generate(lm, ref.at("prompt"), g);
    EXPECT_TRUE(torch::equal(out.tokens, ref.at("greedy")))
        << name << (cache ? " (cached)" : " (no cache)") << ": braid " << out.tokens << " vs transformers "
        << ref.at("greedy");
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HFLMParity, ::testing::Values("llama_linear", "llama3", "smollm", "qwen2"));

TEST(HFLM, ConfigMapsOneFieldEach) {
  auto o = braid::run::hf_lm_options(read_config("llama3"), "config.json");
  EXPECT_EQ(o.vocab_size, 96);
  EXPECT_EQ(o.dim, 32);
  EXPECT_EQ(o.layers, 2);
  EXPECT_EQ(o.heads, 4);
  EXPECT_EQ(o.kv_heads, 2);
  EXPECT_EQ(o.hidden, 64);
  EXPECT_EQ(o.max_seq, 256);
  EXPECT_FALSE(o.tie_embeddings);
  EXPECT_FALSE(o.attention_bias);
  EXPECT_EQ(o.rope_scaling, "llama3");
  EXPECT_DOUBLE_EQ(o.rope_factor, 8.0);
  EXPECT_DOUBLE_EQ(o.rope_high_freq_factor, 4.0);
  EXPECT_EQ(o.rope_original_max_seq, 64);
  auto q = braid::run::hf_lm_options(read_config("qwen2"), "config.json");
  EXPECT_TRUE(q.attention_bias);
  EXPECT_TRUE(q.tie_embeddings);
  EXPECT_DOUBLE_EQ(q.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(q.norm_eps, 1e-6);
  auto l = braid::run::hf_lm_options(read_config("llama_linear"), "config.json");
  EXPECT_EQ(l.rope_scaling, "linear");
  EXPECT_DOUBLE_EQ(l.rope_factor, 2.0);
  // and back: the exported config reads as the same options
  for (const auto& opts : {o, q, l}) {
    if (opts.attention_bias && !opts.rope_scaling.empty()) continue;
    auto back = braid::run::hf_lm_options(braid::run::hf_lm_config(opts), "exported");
    EXPECT_EQ(back.dim, opts.dim);
    EXPECT_EQ(back.kv_heads, opts.kv_heads);
    EXPECT_EQ(back.tie_embeddings, opts.tie_embeddings);
    EXPECT_EQ(back.attention_bias, opts.attention_bias);
    EXPECT_EQ(back.rope_scaling, opts.rope_scaling);
    EXPECT_DOUBLE_EQ(back.rope_factor, opts.rope_factor);
    EXPECT_EQ(back.rope_original_max_seq, opts.rope_original_max_seq);
  }
}

TEST(HFLM, RefusesUnsupportedConfigNamingTheKey) {
  auto expect = [](json cfg, const std::string& key) {
    ExpectInputError([&] { braid::run::hf_lm_options(cfg, "cfg.json"); }, "cfg.json", key);
  };
  auto c = read_config("llama_linear");
  auto bad = c;
  bad["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  expect(bad, "rope_scaling.type");
  bad["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  expect(bad, "rope_scaling.rope_type");
  bad = c;
  bad["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect(bad, "rope_scaling.low_freq_factor");
  bad = c;
  bad["hidden_act"] = "gelu";
  expect(bad, "hidden_act");
  bad = c;
  bad["model_type"] = "gpt2";
  expect(bad, "model_type");
  bad = c;
  bad["attention_bias"] = true;
  expect(bad, "attention_bias");
  bad = c;
  bad.erase("hidden_size");
  expect(bad, "hidden_size");
  bad = c;
  bad["num_key_value_heads"] = 3;
  expect(bad, "kv_heads");
  bad = c;
  bad["head_dim"] = 16;
  expect(bad, "head_dim");
  bad = read_config("qwen2");
  bad["use_sliding_window"] = true;
  expect(bad, "use_sliding_window");
}

TEST(HFLM, LoadsStrictlyNamingTheTensor) {
  const auto tensors = braid::read_safetensors(fixture("llama_linear") + "/model.safetensors");
  const auto cfg = read_config("llama_linear");
  {  // untied model without lm_head
    TempDir d("hf_lm_nohead");
    auto t = tensors;
    t.erase("lm_head.weight");
    write_model(d, cfg, t);
    ExpectInputError([&] { braid::run::load_hf_lm(d.path.string()); }, d.path.string(), "lm_head.weight");
  }
  {  // mis-shaped tensor
    TempDir d("hf_lm_shape");
    auto t = tensors;
    t["model.layers.1.mlp.up_proj.weight"] = torch::zeros({63, 32});
    write_model(d, cfg, t);
    ExpectInputError([&] { braid::run::load_hf_lm(d.path.string()); }, d.path.string(),
                     "model.layers.1.mlp.up_proj.weight");
  }
  {  // unknown tensor
    TempDir d("hf_lm_unknown");
    auto t = tensors;
    t["model.layers.2.mlp.up_proj.weight"] = torch::zeros({64, 32});
    write_model(d, cfg, t);
    ExpectInputError([&] { braid::run::load_hf_lm(d.path.string()); }, d.path.string(),
                     "model.layers.2.mlp.up_proj.weight");
  }
  {  // tied config, but a differing lm_head
    TempDir d("hf_lm_tied");
    auto t = tensors;
    auto c = cfg;
    c["tie_word_embeddings"] = true;
    write_model(d, c, t);
    ExpectInputError([&] { braid::run::load_hf_lm(d.path.string()); }, d.path.string(), "lm_head.weight");
    t["lm_head.weight"] = t.at("model.embed_tokens.weight").clone();  // equal: dropped, loads
    write_model(d, c, t);
    EXPECT_NO_THROW(braid::run::load_hf_lm(d.path.string()));
  }
  {  // bf16 weights load (converted to fp32 by run/hf_checkpoint)
    TempDir d("hf_lm_bf16");
    braid::TensorMap t;
    for (const auto& [n, x] : tensors) t[n] = x.to(torch::kBFloat16);
    write_model(d, cfg, t);
    auto lm = braid::run::load_hf_lm(d.path.string());
    EXPECT_TRUE(torch::equal(lm->model->norm->weight, tensors.at("model.norm.weight").to(torch::kBFloat16).to(torch::kFloat)));
  }
}

// braid import hf of the SmolLM2-like fixture (with its tokenizer.json) -> a model 'lm' run: braid generate --text
// gives transformers' greedy ids; the run's weights are "lm." + the checkpoint's names (what model.init_from of an
// MLLM's lm matches); braid export of the run gives the checkpoint's tensors back.
TEST(HFLMImport, SmolLMRunGeneratesLikeTransformersAndExportsBack) {
  TempDir d("hf_lm_import");
  const std::string run = d.path.string() + "/run", out = d.path.string() + "/out";
  auto r = braid::test::run_braid("import hf " + braid::test::q(fixture("smollm")) + " --out " + braid::test::q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  auto ref = braid::read_safetensors(fixture("smollm") + "/reference.safetensors");
  auto g = braid::test::run_braid("generate " + braid::test::q(run) + " --text 'The quick brown fox' --max-tokens 12 --json");
  ASSERT_EQ(g.code, 0) << g.err;
  auto j = braid::test::last_json_line(g.out);
  auto want = ref.at("text_greedy")[0];
  EXPECT_EQ(j.at("ids").get<std::vector<int64_t>>(),
            std::vector<int64_t>(want.data_ptr<int64_t>(), want.data_ptr<int64_t>() + want.numel()))
      << g.out;

  const auto ck = braid::read_safetensors(fixture("smollm") + "/model.safetensors");
  auto p = braid::run::open_run(run, "model", "cpu");
  size_t n = 0;
  for (const auto& [name, t] : braid::module_tensors(*p.model)) {
    ASSERT_EQ(name.rfind("lm.", 0), 0u) << name;
    ASSERT_TRUE(ck.count(name.substr(3))) << name;
    EXPECT_TRUE(torch::equal(t, ck.at(name.substr(3)))) << name;
    ++n;
  }
  EXPECT_EQ(n, ck.size());

  auto e = braid::test::run_braid("export " + braid::test::q(run) + " --out " + braid::test::q(out));
  ASSERT_EQ(e.code, 0) << e.err;
  const auto back = braid::read_safetensors(out + "/hf/model.safetensors");
  ASSERT_EQ(back.size(), ck.size());
  for (const auto& [name, t] : ck) EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  EXPECT_EQ(json::parse(braid::test::read_file(out + "/hf/config.json")).at("tie_word_embeddings"), true);

  // model.init_from of an MLLM whose lm has the fixture's shape (frozen): its decoder layers and final norm are
  // the checkpoint's (the embeddings differ: the MLLM trains its own tokenizer with the chat pieces)
  {
    ToyOptions to;
    to.n = 16, to.classes = 2, to.audio = false;
    const auto manifest = braid::test::make_toy_dataset(d.path.string() + "/data", to);
    const std::string recipe = R"(
task: generate
threads: 1
data: {image: {size: 16}, text: {vocab: 60, view: en}}
model:
  name: mllm
  modalities: [image, text]
  tokens: 2
  projector: {name: linear}
  lm: {dim: 48, layers: 2, heads: 6, kv_heads: 2, hidden: 96, max_seq: 64, norm_eps: 1e-5, tie_embeddings: true}
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
  tasks:
    - {name: name, modality: image, prompt: "what is shown?", answer: text}
  freeze: [lm]
  init_from: )" + run + R"(
train: {epochs: 1, batch_size: 8, lr: 0.01}
)";
    const std::string mrun = d.path.string() + "/mllm";
    auto t = braid::test::run_braid("train " + braid::test::q(d.file("m.yaml", recipe)) + " --data " +
                                    braid::test::q(manifest) + " --out " + braid::test::q(mrun));
    ASSERT_EQ(t.code, 0) << t.err;
    EXPECT_NE(t.err.find("initialized 19 tensors from"), std::string::npos) << t.err;
    auto mp = braid::run::open_run(mrun, "model", "cpu");
    const auto mt = braid::module_tensors(*mp.model);
    for (const auto& [name, w] : ck) {
      if (name == "model.embed_tokens.weight") continue;
      ASSERT_TRUE(mt.count("lm." + name)) << name;
      EXPECT_TRUE(torch::equal(mt.at("lm." + name), w)) << name;
    }
  }

  // a folder without tokenizer.json is refused naming it; a second import into the run too
  auto no_tok = braid::test::run_braid("import hf " + braid::test::q(fixture("llama_linear")) + " --out " +
                                       braid::test::q(d.path.string() + "/run2"));
  EXPECT_NE(no_tok.code, 0);
  EXPECT_NE(no_tok.err.find("tokenizer.json"), std::string::npos) << no_tok.err;
  {  // a tokenizer larger than the model's vocabulary
    TempDir q("hf_lm_bigtok");
    for (const char* f : {"config.json", "model.safetensors"})
      std::filesystem::copy_file(fixture("qwen2") + "/" + f, q.path / f);
    std::filesystem::copy_file(fixture("smollm") + "/tokenizer.json", q.path / "tokenizer.json");
    auto big = braid::test::run_braid("import hf " + braid::test::q(q.path.string()) + " --out " +
                                      braid::test::q(q.path.string() + "/run"));
    EXPECT_NE(big.code, 0);
    EXPECT_NE(big.err.find("the tokenizer has 400 tokens but config.json key 'vocab_size' is 96"), std::string::npos)
        << big.err;
  }
  auto again = braid::test::run_braid("import hf " + braid::test::q(fixture("smollm")) + " --out " + braid::test::q(run));
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("already a braid run"), std::string::npos) << again.err;
}

}  // namespace
