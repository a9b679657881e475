// `braid bench fusion` with the temporal models (mult, mfn, mctn; docs/temporal.md): the method
// list and its groups, where each method's model section comes from, and an end-to-end run on toy
// data whose rows are the temporal models trained with the base recipe's data and budget.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "braid/core/config.h"
#include "test_util.h"

using namespace braid::test;

namespace {

// The base recipe of a toy benchmark: a fusion_classifier, 2 epochs, 8 px images.
const char* kBase = R"(
threads: 1
data: {image: {size: 8}, audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 8}, text: {vocab: 30}}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    audio: {name: audio_cnn, channels: [4], dim: 8}
    text: {name: text_bow, embed: 8, dim: 8}
  head: {hidden: [8]}
train: {epochs: 2, batch_size: 8}
)";

// A model recipe with its own data and train sections, which the benchmark must not use.
std::string model_recipe(const std::string& model) {
  return "data: {image: {size: 16}}\nmodel: " + model + "\ntrain: {epochs: 7, batch_size: 4}\n";
}
const char* kSeq = "sequences: {image: {name: image_rows, dim: 8}, audio: {name: audio_frames, dim: 8, stride: 2}}";

struct Bench {
  std::string dir, manifest;
};

Bench make_bench(const std::string& tag) {
  Bench b{temp_dir(tag), ""};
  b.manifest = make_toy_dataset(b.dir + "/data", ToyOptions{48, 3});
  write_file(b.dir + "/r.yaml", kBase);
  // found by name beside the base recipe: r_<method>.yaml
  write_file(b.dir + "/r_mult.yaml",
             model_recipe(std::string("{name: mult, modalities: [image, audio], ") + kSeq +
                          ", dim: 8, heads: 2, layers: 1, self_layers: 1, head: {hidden: [8]}}"));
  write_file(b.dir + "/r_mfn.yaml",
             model_recipe(std::string("{name: mfn, modalities: [image, audio], ") + kSeq +
                          ", hidden: 8, memory: 8, attn_hidden: 8, steps: 8, head: {hidden: [8]}}"));
  // only through --model-recipe
  write_file(b.dir + "/tiny_mctn.yaml",
             model_recipe("{name: mctn, modalities: [image, audio], source: image, target: audio, "
                          "sequences: {image: {name: image_rows, dim: 8}}, hidden: 8, steps: 8, head: {hidden: [8]}}"));
  return b;
}

std::string bench_args(const Bench& b, const std::string& methods, const std::string& extra = "") {
  return "bench fusion --recipe " + q(b.dir + "/r.yaml") + " --data " + q(b.manifest) + " --methods " + methods +
         " --seeds 1 --threads 1 --out " + q(b.dir + "/out") + extra;
}

}  // namespace

TEST(FusionBenchTemporal, BadMethodNamesAndMissingModelRecipesAreOneLineErrors) {
  auto b = make_bench("bench_temporal_err");
  auto r = run_braid(bench_args(b, "concat,mulT"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("unknown method 'mulT'"), std::string::npos) << r.err;
  // the valid names, groups and temporal models included
  for (const char* v : {"all, temporal", "uni:image", "late_poe", "mult, mfn, mctn"})
    EXPECT_NE(r.err.find(v), std::string::npos) << v << " missing from: " << r.err;
  // no r_mctn.yaml beside r.yaml: the error names the file it looked for and the option
  r = run_braid(bench_args(b, "temporal"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("r_mctn.yaml, which does not exist; pass --model-recipe mctn=RECIPE"), std::string::npos)
      << r.err;
  // a model recipe of another model
  r = run_braid(bench_args(b, "mfn", " --model-recipe mfn=" + q(b.dir + "/r_mult.yaml")));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("model.name is 'mult', expected 'mfn'"), std::string::npos) << r.err;
  r = run_braid(bench_args(b, "concat", " --model-recipe tfn=" + q(b.dir + "/r_mult.yaml")));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("'tfn' is not a temporal method (valid: mult, mfn, mctn)"), std::string::npos) << r.err;
  r = run_braid(bench_args(b, "mult", " --model-recipe mult"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("expected METHOD=RECIPE"), std::string::npos) << r.err;
  // nothing was trained by any of them
  EXPECT_FALSE(std::filesystem::exists(b.dir + "/out/runs/concat"));
}

TEST(FusionBenchTemporal, TemporalRowsTrainWithTheBaseDataAndBudget) {
  auto b = make_bench("bench_temporal");
  // "temporal" expands to mult, mfn, mctn; the repeated mult is run once
  auto r = run_braid(bench_args(b, "temporal,mult,uni:image", " --model-recipe mctn=" + q(b.dir + "/tiny_mctn.yaml")));
  ASSERT_EQ(r.code, 0) << r.err;
  auto res = nlohmann::json::parse(read_file(b.dir + "/out/results.json"));
  std::vector<std::string> names;
  for (const auto& row : res["methods"]) names.push_back(row["method"]);
  EXPECT_EQ(names, (std::vector<std::string>{"mult", "mfn", "mctn", "uni:image"}));
  ASSERT_EQ(res["runs"].size(), 4u);
  for (const auto& run : res["runs"]) {
    ASSERT_FALSE(run.contains("error")) << run.dump();
    const std::string method = run["method"], dir = run["run"];
    // the model section is the model recipe's; data and train are the base recipe's
    auto resolved = braid::Config::from_file(dir + "/recipe.resolved.yaml");
    EXPECT_EQ(resolved.at("model").get<std::string>("name", ""), method == "uni:image" ? "fusion_classifier" : method);
    EXPECT_EQ(resolved.at("train").get<int64_t>("epochs", 0), 2) << method;
    EXPECT_EQ(resolved.at("train").get<int64_t>("batch_size", 0), 8) << method;
    EXPECT_EQ(resolved.at("data").at("image").get<int64_t>("size", 0), 8) << method;
    // the reported clean accuracy is the run's own predictions, recounted
    auto rc = recount_accuracy(dir, b.manifest, "test");
    EXPECT_EQ(rc.n, 6);
    EXPECT_DOUBLE_EQ(run["clean"]["accuracy"].get<double>(), rc.accuracy()) << method;
  }
  auto row = [&](const std::string& m) {
    for (const auto& x : res["methods"])
      if (x["method"] == m) return x;
    ADD_FAILURE() << "no row " << m;
    return nlohmann::json();
  };
  for (const char* m : {"mult", "mfn"}) {
    auto x = row(m);
    EXPECT_EQ(x["seeds_ok"].get<int>(), 1);
    EXPECT_EQ(x["noise_curve"]["image"].size(), 10u) << m;
    EXPECT_EQ(x["noise_curve"]["audio"].size(), 10u) << m;
    EXPECT_TRUE(x["effective_robustness"].contains("audio")) << m;
    EXPECT_EQ(x["missing"].size(), 3u) << m;  // image, audio, image+audio
    EXPECT_NEAR(x["missing"]["image+audio"].get<double>(), x["accuracy"][0].get<double>(), 1e-12) << m;
    EXPECT_FALSE(x.contains("not_read_at_test")) << m;
    EXPECT_GT(x["cost"]["parameters"].get<double>(), 0) << m;
  }
  // mctn reads only its source at test time: image noise is scored, audio noise is not ("–")
  auto mctn = row("mctn");
  EXPECT_EQ(mctn["noise_curve"]["image"].size(), 10u);
  EXPECT_FALSE(mctn["noise_curve"].contains("audio"));
  EXPECT_EQ(mctn["not_read_at_test"], nlohmann::json::array({"audio"}));
  EXPECT_NEAR(mctn["missing"]["image"].get<double>(), mctn["accuracy"][0].get<double>(), 1e-12);
  auto md = read_file(b.dir + "/out/results.md");
  EXPECT_NE(md.find("| mctn | "), std::string::npos) << md;
  EXPECT_NE(md.find("mctn: – for audio: the model does not read it at test time"), std::string::npos) << md;
  // a second call reuses the finished runs
  auto again = run_braid(bench_args(b, "mfn"));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.err.find("training mfn"), std::string::npos) << again.err;
}
