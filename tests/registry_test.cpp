// `braid list` shows every registered name with its doc line, straight from the registries; the
// run directory's file names have one owner; models state their capabilities.
#include <gtest/gtest.h>

#include "braid/data/build/build.h"
#include "braid/eval/tasks.h"
#include "braid/models/dual_tower.h"
#include "braid/models/model.h"
#include "braid/nn/encoder.h"
#include "braid/nn/fusion.h"
#include "braid/nn/sequence.h"
#include "braid/objectives/supervised.h"
#include "braid/run/run_dir.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

// The line of `out` that lists `name` under its kind must carry the registry's doc line.
void ExpectListed(const std::string& out, const std::string& name, const std::string& doc) {
  EXPECT_FALSE(doc.empty()) << name << " has no doc line";
  auto at = out.find("  " + name + " ");
  ASSERT_NE(at, std::string::npos) << name << " missing from `braid list`:\n" << out;
  auto eol = out.find('\n', at);
  EXPECT_NE(out.substr(at, eol - at).find(doc), std::string::npos) << name << ": doc line not shown";
}

}  // namespace

TEST(List, PrintsEveryRegisteredNameWithItsDoc) {
  auto r = run_braid("list");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto& out = r.out;
  for (const char* kind : {"models: ", "encoders: ", "sequences: ", "fusions: ", "losses: ", "datasets: ", "tasks: "})
    EXPECT_NE(out.find(kind), std::string::npos) << kind;
  int n = 0;
  for (const auto& m : models::model_registry().names()) ExpectListed(out, m, models::model_registry().doc(m)), ++n;
  for (const auto& e : nn::encoder_registry().names()) ExpectListed(out, e, nn::encoder_registry().doc(e)), ++n;
  for (const auto& s : nn::sequence_registry().names()) ExpectListed(out, s, nn::sequence_registry().doc(s)), ++n;
  for (const auto& f : nn::fusion_registry().names()) ExpectListed(out, f, nn::fusion_registry().doc(f)), ++n;
  for (const auto& [l, d] : objectives::supervised_losses()) ExpectListed(out, "train.loss: " + l, d.doc), ++n;
  for (const auto& [l, d] : models::DualTowerImpl::losses()) ExpectListed(out, "model.loss: " + l, d.doc), ++n;
  for (const auto& d : data::dataset_registry().names()) ExpectListed(out, d, data::dataset_registry().doc(d)), ++n;
  for (const auto& t : eval::task_registry().names()) ExpectListed(out, t, eval::task_registry().doc(t)), ++n;
  EXPECT_GE(n, 40);  // 7 models, 7 encoders, 9 fusions, 8 losses, 4 datasets, 5 tasks at least
  for (const char* known : {"dual_tower", "image_vit", "lmf", "model.loss: siglip", "train.loss: ccc", "emoji", "cmg"})
    EXPECT_NE(out.find(known), std::string::npos) << known;

  auto one = run_braid("list tasks");
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_NE(one.out.find("zeroshot"), std::string::npos);
  EXPECT_EQ(one.out.find("image_vit"), std::string::npos) << "list tasks printed other kinds";
  auto bad = run_braid("list nosuchkind");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("unknown kind 'nosuchkind'"), std::string::npos) << bad.err;
}

TEST(Registry, UnknownNamesListTheKnownOnes) {
  run::Pipeline p;
  try {
    eval::task_registry().make_by_name("nope", "--task", p, eval::TaskRequest{});
    FAIL() << "no error";
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("--task: unknown eval task 'nope'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("retrieval"), std::string::npos) << msg;
  }
  ExpectInputError([] { objectives::supervised_loss("ccc", true, "recipe key 'train.loss'"); }, "train.loss",
                   "not a loss for task classify");
  ExpectInputError([] { objectives::supervised_loss("hinge", false, "recipe key 'train.loss'"); }, "train.loss",
                   "mse");
  EXPECT_EQ(&objectives::supervised_loss("", true, "x"), &objectives::supervised_losses().at("ce"));
  EXPECT_EQ(&objectives::supervised_loss("", false, "x"), &objectives::supervised_losses().at("mse"));
}

TEST(RunDir, NamesEveryFileOfARun) {
  run::RunDir rd("/r");
  EXPECT_EQ(rd.recipe(), "/r/recipe.resolved.yaml");
  EXPECT_EQ(rd.facts(), "/r/run.json");
  EXPECT_EQ(rd.model(), "/r/model.pt");
  EXPECT_EQ(rd.best(), "/r/checkpoints/best.pt");
  EXPECT_EQ(rd.last(), "/r/checkpoints/last.pt");
  EXPECT_EQ(rd.metrics(), "/r/metrics.jsonl");
  EXPECT_EQ(rd.rank_log(2), "/r/rank2.log");
  EXPECT_FALSE(rd.is_run());
  ExpectInputError([] { run::open_run("/nonexistent-run-dir"); }, "/nonexistent-run-dir", "not a braid run directory");
}

namespace {

models::ModelPtr build_model(const std::string& yaml, models::Task task) {
  models::ModelContext ctx;
  ctx.modalities = {"image", "text"};
  ctx.task = task;
  ctx.outputs = task == models::Task::Align ? 0 : 3;
  for (const auto& m : ctx.modalities) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = 30;
    e.image_size = 16;
    ctx.encoders[m] = e;
  }
  return models::model_registry().make(Config::from_string(yaml, "model.yaml"), ctx);
}

}  // namespace

TEST(Capabilities, AreStatedByTheModelNotInferredFromItsName) {
  auto fc = build_model("name: fusion_classifier\nencoders: {image: {name: image_cnn, channels: [4], dim: 8}, "
                        "text: {name: text_bow, embed: 8, dim: 8}}\n", models::Task::Classify);
  auto c = fc->capabilities();
  EXPECT_TRUE(c.embeds.empty());
  EXPECT_FALSE(c.matches);
  EXPECT_EQ(c.codes, 0);
  ModalityBatch mb{torch::zeros({1, 3, 16, 16}), torch::ones({1}, torch::kLong), torch::ones({1}, torch::kBool)};
  ExpectInputError([&] { fc->codes("image", mb); }, "no discrete codebook");
  ExpectInputError([&] { fc->match_logits(mb, mb); }, "no image-text matching head");

  auto dt = build_model("name: dual_tower\nencoders: {image: {name: image_cnn, channels: [4], dim: 8}, "
                        "text: {name: text_bow, embed: 8, dim: 8}}\nembed_dim: 8\n", models::Task::Align);
  EXPECT_EQ(dt->capabilities().embeds, (std::vector<std::string>{"image", "text"}));
  EXPECT_FALSE(dt->capabilities().matches);

  auto st = build_model("name: single_tower\ndim: 16\nheads: 2\ndepth: 1\npatch: 4\nmax_text: 8\nembed_dim: 8\n",
                        models::Task::Align);
  EXPECT_TRUE(st->capabilities().matches);
  EXPECT_EQ(st->capabilities().embeds, (std::vector<std::string>{"image", "text"}));
}
