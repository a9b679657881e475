// braid export (run/export.h): a tiny generative run (the MLLM of tests/mllm_fixture.h) exported through the
// CLI; the files' names and shapes, braid_config.json, and the round trip: model.safetensors equals the run's
// weights, and hf/ (a LlamaForCausalLM folder) re-imports through run/hf_lm.h as the run's LM, same logits.
// No Python: scripts/hf/check_export.py checks the same folders with PyTorch and transformers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "braid/core/safetensors.h"
#include "braid/nn/lm/causal_lm.h"
#include "braid/run/hf_lm.h"
#include "braid/run/run_dir.h"
#include "mllm_fixture.h"
#include "test_util.h"

using namespace braid::test;
using nlohmann::json;

namespace {

TEST(Export, GenerativeRunRoundTripsWithItsLMAsHuggingFace) {
  TempDir d("export");
  ToyOptions to;
  to.n = 24, to.classes = 2, to.audio = false;
  const auto manifest = make_toy_dataset(d.path.string() + "/data", to);
  std::string recipe = kTinyGenerateRecipe;
  recipe.replace(recipe.find("epochs: 3"), 9, "epochs: 1");
  const auto run = d.path.string() + "/run", out = d.path.string() + "/out";
  auto t = run_braid("train " + q(d.file("r.yaml", recipe)) + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(t.code, 0) << t.err;
  auto r = run_braid("export " + q(run) + " --out " + q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(out + "/hf/config.json"), std::string::npos) << r.out;

  auto p = braid::run::open_run(run, "model", "cpu");
  const auto want = braid::module_tensors(*p.model);
  const auto got = braid::read_safetensors(out + "/model.safetensors");
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [n, w] : want) {
    ASSERT_TRUE(got.count(n)) << n;
    EXPECT_TRUE(torch::equal(got.at(n), w)) << n;
  }

  const auto bc = json::parse(read_file(out + "/braid_config.json"));
  EXPECT_EQ(bc.at("recipe").at("model").at("name"), "mllm");
  EXPECT_EQ(bc.at("recipe").at("model").at("lm").at("dim"), 32);
  EXPECT_EQ(bc.at("facts").at("task"), "generate");
  EXPECT_EQ(bc.at("hf"), "LlamaForCausalLM");
  ASSERT_EQ(bc.at("tensors").size(), want.size());
  for (const auto& [n, w] : want) EXPECT_EQ(bc.at("tensors").at(n).get<std::vector<int64_t>>(), w.sizes().vec()) << n;

  // hf/: exactly the run's lm.* tensors, without the prefix; the config maps back to the same options
  const auto hf = braid::read_safetensors(out + "/hf/model.safetensors");
  size_t lm_tensors = 0;
  for (const auto& [n, w] : want) {
    if (n.rfind("lm.", 0) != 0) continue;
    ++lm_tensors;
    ASSERT_TRUE(hf.count(n.substr(3))) << n;
    EXPECT_TRUE(torch::equal(hf.at(n.substr(3)), w)) << n;
  }
  EXPECT_EQ(hf.size(), lm_tensors);
  EXPECT_TRUE(hf.count("model.embed_tokens.weight"));
  const auto cfg = json::parse(read_file(out + "/hf/config.json"));
  EXPECT_EQ(cfg.at("architectures")[0], "LlamaForCausalLM");
  EXPECT_EQ(cfg.at("hidden_size"), 32);
  EXPECT_EQ(cfg.at("num_key_value_heads"), 2);
  EXPECT_EQ(cfg.at("intermediate_size"), 48);
  EXPECT_EQ(cfg.at("max_position_embeddings"), 48);

  auto back = braid::run::load_hf_lm(out + "/hf");
  std::shared_ptr<braid::nn::lm::CausalLMImpl> lm;
  for (const auto& c : p.model->named_children())
    if (c.key() == "lm") lm = std::dynamic_pointer_cast<braid::nn::lm::CausalLMImpl>(c.value());
  ASSERT_TRUE(lm);
  EXPECT_EQ(back->options.tie_embeddings, lm->options.tie_embeddings);
  EXPECT_EQ(back->options.vocab_size, lm->options.vocab_size);
  torch::NoGradGuard ng;
  auto ids = torch::arange(12, torch::kLong).remainder(lm->options.vocab_size).view({2, 6});
  EXPECT_TRUE(torch::equal(back->forward(ids), lm->forward(ids)));
  const auto probe = braid::read_safetensors(out + "/lm_check.safetensors");
  ASSERT_EQ(probe.at("ids").sizes(), (std::vector<int64_t>{2, 16}));
  EXPECT_TRUE(AllClose(back->forward(probe.at("ids")), probe.at("logits"), 1e-6, "lm_check logits"));
}

// A classification run (no LM): model.safetensors + braid_config.json, no hf/.
TEST(Export, ClassifierRunHasNoHuggingFaceFolder) {
  TempDir d("export_cls");
  ToyOptions to;
  to.n = 16, to.classes = 2, to.audio = false, to.text = false;
  const auto manifest = make_toy_dataset(d.path.string() + "/data", to);
  const auto run = d.path.string() + "/run", out = d.path.string() + "/out";
  auto t = run_braid("train " + q(d.file("r.yaml", R"(
threads: 1
data: {image: {size: 8}}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
train: {epochs: 1, batch_size: 8}
)")) + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(t.code, 0) << t.err;
  auto r = run_braid("export " + q(run) + " --out " + q(out) + " --weights model");
  ASSERT_EQ(r.code, 0) << r.err;
  auto p = braid::run::open_run(run, "model", "cpu");
  const auto want = braid::module_tensors(*p.model);
  const auto got = braid::read_safetensors(out + "/model.safetensors");
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [n, w] : want) EXPECT_TRUE(got.count(n) && torch::equal(got.at(n), w)) << n;
  const auto bc = json::parse(read_file(out + "/braid_config.json"));
  EXPECT_TRUE(bc.at("hf").is_null());
  EXPECT_EQ(bc.at("recipe").at("model").at("name"), "fusion_classifier");
  EXPECT_EQ(bc.at("facts").at("task"), "classify");
  EXPECT_FALSE(std::filesystem::exists(out + "/hf"));
  EXPECT_FALSE(std::filesystem::exists(out + "/lm_check.safetensors"));
}

TEST(Export, NotARunIsOneLine) {
  TempDir d("export_bad");
  auto r = run_braid("export " + q(d.path.string()) + " --out " + q(d.path.string() + "/o"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("not a braid run directory"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(d.path / "o" / "model.safetensors"));
}

}  // namespace
