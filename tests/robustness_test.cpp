// Robustness tools: missing-modality masks, subsets, MultiBench scores, deterministic test noise,
// decision-level fusion and `braid bench fusion` end to end on toy data.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "braid/data/loader.h"
#include "braid/eval/robustness.h"
#include "test_util.h"

using namespace braid::test;
namespace fs = std::filesystem;

TEST(Robustness, SubsetsAndScores) {
  auto s = braid::eval::nonempty_subsets({"image", "audio", "text"});
  ASSERT_EQ(s.size(), 7u);
  EXPECT_EQ(s[0], std::vector<std::string>{"image"});
  EXPECT_EQ(s.back().size(), 3u);
  EXPECT_DOUBLE_EQ(braid::eval::relative_robustness({0.9, 0.7, 0.5}), 0.7);
  // points on a line have zero effective robustness; one above the line is positive
  auto e = braid::eval::effective_robustness({0.5, 0.6, 0.7}, {0.4, 0.5, 0.6});
  for (double x : e) EXPECT_NEAR(x, 0.0, 1e-12);
  auto f = braid::eval::effective_robustness({0.5, 0.6, 0.7, 0.6}, {0.4, 0.5, 0.6, 0.7});
  EXPECT_GT(f[3], 0.1);
}

TEST(Robustness, DropModalitiesMasksRowsWithoutTouchingTheSource) {
  braid::Batch b;
  b.mods["image"] = {torch::ones({2, 3, 4, 4}), torch::ones({2}, torch::kLong), torch::ones({2}, torch::kBool)};
  auto src = b.mods["image"].data;
  braid::eval::drop_modalities(b, {"image", "audio"});
  EXPECT_EQ(b.mods["image"].present.sum().item<int64_t>(), 0);
  EXPECT_EQ(b.mods["image"].data.abs().sum().item<float>(), 0.f);
  EXPECT_EQ(src.sum().item<float>(), 96.f);  // the original batch is unchanged
}

TEST(Robustness, TestNoiseIsDeterministicPerSampleAndGrowsWithLevel) {
  auto dir = temp_dir("noise");
  auto m = braid::data::Manifest::load(make_toy_dataset(dir, ToyOptions{8, 2}));
  braid::data::PreprocessOptions po;
  po.image.size = 8;
  po.audio.n_mels = 8;
  po.audio.sample_rate = 8000;
  auto run = [&](const std::string& mod, double level, uint64_t seed) {
    auto o = po;
    o.noise = {mod, level, seed};
    braid::data::Preprocessor p(o, {"image", "audio"}, nullptr);
    return p.process(m.samples()[0], m.path());
  };
  auto clean = run("", 0, 0), a = run("image", 0.5, 1), b = run("image", 0.5, 1), c = run("image", 0.5, 2);
  auto big = run("image", 0.9, 1);
  EXPECT_TRUE(torch::equal(a.mods["image"], b.mods["image"]));
  EXPECT_FALSE(torch::equal(a.mods["image"], c.mods["image"]));
  EXPECT_TRUE(torch::equal(a.mods["audio"], clean.mods["audio"]));  // only the named modality changes
  double d5 = (a.mods["image"] - clean.mods["image"]).abs().mean().item<double>();
  double d9 = (big.mods["image"] - clean.mods["image"]).abs().mean().item<double>();
  EXPECT_GT(d5, 0.0);
  EXPECT_GT(d9, d5);
  auto au = run("audio", 0.5, 1);
  EXPECT_FALSE(torch::equal(au.mods["audio"], clean.mods["audio"]));
  EXPECT_TRUE(torch::isfinite(au.mods["audio"]).all().item<bool>());
}

TEST(Robustness, BenchFusionRunsEndToEnd) {
  auto dir = temp_dir("bench");
  auto manifest = make_toy_dataset(dir + "/data", ToyOptions{48, 3});
  write_file(dir + "/r.yaml", R"(
threads: 1
data: {image: {size: 8}, audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 8}, text: {vocab: 30}}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    audio: {name: audio_cnn, channels: [4], dim: 8}
    text: {name: text_bow, embed: 8, dim: 8}
  head: {hidden: [8]}
  modality_dropout: 0.2
train: {epochs: 2, batch_size: 8}
)");
  auto r = run_braid("bench fusion --recipe " + q(dir + "/r.yaml") + " --data " + q(manifest) +
                     " --methods concat,late_mean,late_poe,uni:image,early --seeds 2 --jobs 2 --out " + q(dir + "/out"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("2 training runs at a time, 1 thread(s) each"), std::string::npos) << r.err;
  auto res = nlohmann::json::parse(read_file(dir + "/out/results.json"));
  ASSERT_EQ(res["methods"].size(), 5u);
  // every run's clean test accuracy is its own model.pt's argmax predictions against the labels,
  // recounted here; a method's reported accuracy is the mean over its seeds
  std::map<std::string, std::vector<double>> by_method;
  ASSERT_EQ(res["runs"].size(), 10u);
  for (const auto& run : res["runs"]) {
    ASSERT_FALSE(run.contains("error")) << run.dump();
    const double acc = run["clean"]["accuracy"].get<double>();
    auto rc = recount_accuracy(run["run"].get<std::string>(), manifest, "test");
    EXPECT_EQ(rc.n, 6);
    EXPECT_DOUBLE_EQ(acc, rc.accuracy()) << run["method"] << " seed " << run["seed"] << ": " << rc.correct
                                         << " of 6 recounted";
    by_method[run["method"].get<std::string>()].push_back(acc);
  }
  for (const auto& row : res["methods"]) {
    EXPECT_EQ(row["seeds_ok"].get<int>(), 2) << row.dump();
    const auto& accs = by_method[row["method"].get<std::string>()];
    ASSERT_EQ(accs.size(), 2u) << row["method"];
    EXPECT_NEAR(row["accuracy"][0].get<double>(), (accs[0] + accs[1]) / 2, 1e-12) << row["method"];
    // with every modality present, the missing-modality score is the clean one
    std::string all;
    for (auto& [subset, v] : row["missing"].items())
      if (subset.size() > all.size()) all = subset;
    EXPECT_NEAR(row["missing"][all].get<double>(), row["accuracy"][0].get<double>(), 1e-12) << row["method"] << " " << all;
    EXPECT_GT(row["cost"]["parameters"].get<double>(), 0);
    EXPECT_GT(row["cost"]["peak_rss_mb"].get<double>(), 1);
  }
  const auto& concat = res["methods"][0];
  EXPECT_EQ(concat["noise_curve"]["image"].size(), 10u);
  EXPECT_EQ(concat["missing"].size(), 7u);  // every non-empty subset of 3 modalities
  EXPECT_EQ(res["methods"][3]["missing"].size(), 1u);
  // early fusion: the raw inputs feed the head, no encoder parameters
  EXPECT_NE(read_file(dir + "/out/runs/early/seed0/recipe.resolved.yaml").find("raw"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/out/noise_image.svg"));
  EXPECT_NE(read_file(dir + "/out/results.md").find("| late_poe |"), std::string::npos);
  // a second call reuses the finished runs
  auto again = run_braid("bench fusion --recipe " + q(dir + "/r.yaml") + " --data " + q(manifest) +
                         " --methods concat --seeds 2 --threads 1 --out " + q(dir + "/out"));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.err.find("training concat"), std::string::npos) << again.err;
}
