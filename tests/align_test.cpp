// Alignment models and evaluations: the dual tower's objectives, embeddings and recipe errors,
// an end-to-end align run through the CLI (train, eval retrieval / zero-shot / probe), and the
// zero-shot logits against a python3-torch golden (scripts/make_zeroshot_goldens.py).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/eval/evaluate.h"
#include "braid/eval/zeroshot.h"
#include "braid/models/dual_tower.h"
#include "braid/models/model.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

models::ModelContext toy_context(int64_t K = 3) {
  models::ModelContext ctx;
  ctx.modalities = {"image", "text", "audio"};
  ctx.task = models::Task::Align;
  for (const auto& m : ctx.modalities) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = 30;
    e.image_size = 16;
    e.n_mels = 8;
    ctx.encoders[m] = e;
  }
  ctx.class_text = torch::randint(1, 30, {K, 3}, torch::kLong);
  ctx.class_text_lengths = torch::full({K}, 3, torch::kLong);
  return ctx;
}

const char* kModel = R"(
name: dual_tower
encoders:
  image: {name: image_vit, patch: 4, dim: 16, depth: 1, heads: 2}
  text: {name: text_transformer, dim: 16, layers: 1, heads: 2, max_len: 8}
  audio: {name: audio_cnn, channels: [4], dim: 16}
embed_dim: 8
)";

Batch toy_batch(int64_t B, int64_t K = 3) {
  Batch b;
  for (int64_t i = 0; i < B; ++i) b.index.push_back(i);
  auto ones = torch::ones({B}, torch::kBool);
  b.mods["image"] = {torch::randn({B, 3, 16, 16}), torch::ones({B}, torch::kLong), ones};
  b.mods["text"] = {torch::randint(1, 30, {B, 5}, torch::kLong), torch::full({B}, 5, torch::kLong), ones};
  b.mods["audio"] = {torch::randn({B, 8, 20}), torch::full({B}, 20, torch::kLong), ones};
  b.labels = torch::arange(B, torch::kLong) % K;
  return b;
}

models::ModelPtr make_model(const std::string& extra) {
  auto cfg = Config::from_string(std::string(kModel) + extra, "model.yaml");
  return models::model_registry().make(cfg, toy_context());
}

// The JSON object printed as the last line of stdout (--json).
nlohmann::json last_json(std::string out) {
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return nlohmann::json::parse(out.substr(out.rfind('\n') + 1));
}

}  // namespace

TEST(ImageViT, ShapesAndClassToken) {
  torch::manual_seed(0);
  auto cfg = Config::from_string("{name: image_vit, patch: 4, dim: 16, depth: 2, heads: 4}", "enc.yaml");
  nn::EncoderContext e;
  e.modality = "image";
  e.image_size = 16;
  auto enc = nn::encoder_registry().make(cfg, e);
  ModalityBatch mb{torch::randn({3, 3, 16, 16}), torch::ones({3}, torch::kLong),
                         torch::tensor({true, false, true})};
  auto h = enc->forward(mb);
  ASSERT_EQ(h.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(h[1].abs().sum().item<float>(), 0.f);  // absent row
  EXPECT_GT(h[0].abs().sum().item<float>(), 0.f);
  // a wrong image size is a one-line input error
  ModalityBatch bad{torch::randn({1, 3, 20, 20}), torch::ones({1}, torch::kLong), torch::ones({1}, torch::kBool)};
  EXPECT_THROW(enc->forward(bad), InputError);
}

TEST(DualTower, EveryLossIsFiniteAndTrains) {
  for (const std::string loss : {"clip", "siglip", "dcca", "devise", "cycle", "[clip, devise, cycle]"}) {
    SCOPED_TRACE(loss);
    torch::manual_seed(1);
    auto model = make_model("loss: " + loss + "\nanchor: image\nloss_weights: {}\n");
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(3e-3));
    auto batch = toy_batch(12);
    double first = 0, last = 0;
    for (int s = 0; s < 25; ++s) {
      auto l = model->objective(batch);
      ASSERT_TRUE(std::isfinite(l.item<double>()));
      if (s == 0) first = l.item<double>();
      last = l.item<double>();
      opt.zero_grad();
      l.backward();
      opt.step();
    }
    EXPECT_LT(last, first);  // the loss decreases on a fixed batch
    auto terms = model->loss_terms();
    EXPECT_TRUE(terms.count("temperature"));
    // embeddings are unit-norm
    auto e = model->embed("image", batch.mods["image"]);
    ASSERT_EQ(e.sizes(), (std::vector<int64_t>{12, 8}));
    EXPECT_TRUE(AllClose(e.norm(2, 1), torch::ones({12}), 1e-5, "norms"));
  }
}

TEST(DualTower, AnchorPairsAndInit) {
  auto m1 = make_model("loss: clip\nanchor: image\n");
  auto* dt = dynamic_cast<models::DualTowerImpl*>(m1.get());
  ASSERT_NE(dt, nullptr);
  EXPECT_EQ(dt->pairs().size(), 2u);  // image-text, image-audio
  EXPECT_NEAR(dt->temperature(), 0.07, 1e-6);
  auto m2 = make_model("loss: siglip\n");
  auto* d2 = dynamic_cast<models::DualTowerImpl*>(m2.get());
  EXPECT_EQ(d2->pairs().size(), 3u);  // every pair
  EXPECT_NEAR(d2->temperature(), 0.1, 1e-6);
  EXPECT_NEAR(d2->named_parameters()["bias"].item<double>(), -10.0, 1e-9);
}

TEST(DualTower, BadRecipeKeysNameTheKey) {
  ExpectInputError([] { make_model("loss: clap\n"); }, "model.yaml", "loss");
  ExpectInputError([] { make_model("loss: clip\nanchor: video\n"); }, "model.yaml", "anchor");
  ExpectInputError([] { make_model("loss: clip\nloss_weights: {siglip: 1}\n"); }, "model.yaml", "loss_weights");
}

TEST(DualTower, FrozenEncoderWithProjectorTrainsOnlyTheRest) {
  for (const std::string kind : {"qformer", "perceiver"}) {
    SCOPED_TRACE(kind);
    torch::manual_seed(2);
    auto model = make_model("loss: clip\nanchor: image\nfreeze: [image]\nprojectors: {image: {name: " + kind +
                            ", queries: 4, layers: 1, heads: 2}}\n");
    const int64_t all = models::count_parameters(*model), trainable = models::count_parameters(*model, true);
    EXPECT_LT(trainable, all);
    EXPECT_GT(trainable, 0);
    model->train();
    auto l = model->objective(toy_batch(6));
    l.backward();
    for (const auto& p : model->named_parameters()) {
      if (p.key().rfind("enc_image.", 0) == 0) {
        EXPECT_FALSE(p.value().grad().defined()) << p.key();
        EXPECT_FALSE(p.value().requires_grad()) << p.key();
      }
      if (p.key().rfind("prj_image.", 0) == 0) EXPECT_TRUE(p.value().grad().defined()) << p.key();
    }
    auto e = model->embed("image", toy_batch(3).mods["image"]);
    EXPECT_TRUE(AllClose(e.norm(2, 1), torch::ones({3}), 1e-5, "norms"));
  }
  ExpectInputError([] { make_model("projectors: {text: {name: qformer}}\n"); }, "model.yaml", "projectors.text");
  ExpectInputError([] { make_model("freeze: [video]\n"); }, "model.yaml", "freeze");
}

TEST(ZeroShot, LogitsMatchGolden) {
  auto t = read_safetensors(std::string(BRAID_FIXTURES) + "/zeroshot/golden.safetensors");
  auto cls = eval::average_prompt_embeddings(t.at("prompts"));
  EXPECT_TRUE(AllClose(cls.to(torch::kDouble), t.at("classes"), 1e-6, "class embeddings"));
  auto logits = eval::zeroshot_logits(t.at("x"), cls);
  EXPECT_TRUE(AllClose(logits.to(torch::kDouble), t.at("logits"), 1e-4, "logits"));
  EXPECT_NEAR(eval::topk_accuracy(logits, t.at("labels"), 1), t.at("top1").item<double>(), 1e-12);
  EXPECT_NEAR(eval::topk_accuracy(logits, t.at("labels"), 5), t.at("top5").item<double>(), 1e-12);
}

TEST(AlignRun, TrainEvalZeroShotProbeAndEmbedParity) {
  const std::string dir = temp_dir("align");
  ToyOptions o;
  o.n = 48;
  const std::string manifest = make_toy_dataset(dir + "/data", o);
  const std::string recipe = dir + "/recipe.yaml";
  write_file(recipe, R"(
task: align
seed: 1
threads: 1
data:
  workers: 1
  image: {size: 16}
  audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 16}
  text: {view: random, vocab: 40}
model:
  name: dual_tower
  encoders:
    image: {name: image_vit, patch: 4, dim: 16, depth: 1, heads: 2}
    text: {name: text_transformer, dim: 16, layers: 1, heads: 2, max_len: 8}
    audio: {name: audio_cnn, channels: [4], dim: 16}
  embed_dim: 16
  loss: clip
  anchor: image
train: {epochs: 8, batch_size: 8, lr: 0.003, warmup_steps: 2, log_every: 1}
)");
  const std::string run = dir + "/run";
  auto r = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = read_jsonl(run + "/metrics.jsonl");
  std::vector<double> losses;
  for (auto& l : lines)
    if (l.contains("loss") && l.contains("step")) losses.push_back(l["loss"].get<double>());
  ASSERT_GE(losses.size(), 10u);
  double head = (losses[0] + losses[1] + losses[2]) / 3;
  double tail = (losses[losses.size() - 1] + losses[losses.size() - 2] + losses[losses.size() - 3]) / 3;
  EXPECT_LT(tail, head);
  ASSERT_TRUE(lines.back().contains("temperature") || lines[lines.size() - 2].contains("temperature"));

  // retrieval, cross-lingual view, zero-shot and probe through the CLI
  auto ev = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split train --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  auto js = last_json(ev.out);
  EXPECT_TRUE(js["retrieval"].contains("image->text"));
  EXPECT_TRUE(js["retrieval"].contains("audio->image"));
  auto zs = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --task zeroshot --json");
  ASSERT_EQ(zs.code, 0) << zs.err;
  auto zj = last_json(zs.out);
  EXPECT_NEAR(zj["chance_top1"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_TRUE(zj["zeroshot"].contains("image"));
  auto pr = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --task probe --json");
  ASSERT_EQ(pr.code, 0) << pr.err;
  auto pj = last_json(pr.out);
  EXPECT_TRUE(pj["probe"].contains("image"));
  EXPECT_GT(pj["probe"]["image"]["train_top1"].get<double>(), 1.0 / 3);  // separable toy classes
  auto xv = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --text-view xx --json");
  ASSERT_EQ(xv.code, 0) << xv.err;
  auto bad = run_braid("eval " + q(run) + " --data " + q(manifest) + " --task zeroshoot");
  EXPECT_EQ(bad.code, 2);

  // zero-shot on a label set the run never saw: the evaluated split's labels become the classes
  std::string relabelled;
  for (auto j : read_jsonl(manifest)) {
    if (j.contains("label")) j["label"] = "new " + j["label"].get<std::string>();
    relabelled += j.dump() + "\n";
  }
  const std::string other = dir + "/data/relabelled.jsonl";
  write_file(other, relabelled);
  auto zo = run_braid("eval " + q(run) + " --data " + q(other) + " --split test --task zeroshot --json");
  ASSERT_EQ(zo.code, 0) << zo.err;
  auto zoj = last_json(zo.out);
  EXPECT_EQ(zoj["class_source"], "data");
  EXPECT_NEAR(zoj["chance_top1"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_EQ(last_json(zs.out)["class_source"], "run");
  auto zr = run_braid("eval " + q(run) + " --data " + q(other) + " --split test --task zeroshot --classes run");
  EXPECT_EQ(zr.code, 2);
  EXPECT_NE(zr.err.find("labels the run was not trained on"), std::string::npos) << zr.err;

  // embed(): unit-norm, and the same vectors from embed_all (evaluation) as from a direct call
  auto p = braid::run::open_pipeline(run);
  braid::run::load_weights(*p.model, braid::run::RunDir(run).model());
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(manifest));
  auto loader = p.loader(m, "test", false);
  auto e = eval::embed_all(p, *loader);
  auto l2 = p.loader(m, "test", false);
  l2->start_epoch(0);
  auto b = l2->next();
  ASSERT_TRUE(b.has_value());
  p.model->eval();
  torch::NoGradGuard ng;
  for (const std::string mod : {"image", "text", "audio"}) {
    auto direct = p.model->embed(mod, b->mods.at(mod));
    ASSERT_TRUE(direct.defined());
    EXPECT_TRUE(AllClose(direct.norm(2, 1), torch::ones({direct.size(0)}), 1e-5, mod + " norms"));
    EXPECT_TRUE(AllClose(e.vectors.at(mod).slice(0, 0, direct.size(0)), direct, 1e-6, mod + " eval vs direct"));
  }
}
