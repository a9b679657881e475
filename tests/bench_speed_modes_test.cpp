// `braid bench speed --infer-only` and `--fused` (issue 19; bench/engine.sh parts ort and fused): inference-only
// timing reports no training rate (and runs no training step), and --fused is reported back as what ran.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "test_util.h"

using namespace braid::test;

namespace {

// a Transformer text encoder, so the block's fused path exists in the model
const char* kRecipe = R"(
threads: 1
data: {image: {size: 8}, text: {vocab: 30}}
model:
  name: fusion_classifier
  modalities: [image, text]
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    text: {name: text_transformer, dim: 16, layers: 1, heads: 2, max_len: 16}
train: {epochs: 1, batch_size: 8}
)";

nlohmann::json bench(const std::string& extra) {
  TempDir dir("bench_modes");
  const std::string manifest = make_toy_dataset(dir.file("data"), ToyOptions{24, 3});
  auto r = run_braid("bench speed " + dir.file("r.yaml", kRecipe) + " --data " + manifest +
                     " --steps 2 --repeats 2 --warmup 1 --threads 1 --json " + extra);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

}  // namespace

TEST(BenchSpeedModes, InferOnlyReportsInferenceRatesAndNoTrainingRate) {
  auto j = bench("--infer-only");
  EXPECT_FALSE(j.contains("train_steps_per_s")) << j.dump();
  ASSERT_EQ(j["runs"].size(), 2u) << j.dump();
  for (const auto& run : j["runs"]) {
    EXPECT_FALSE(run.contains("train_steps_per_s")) << run.dump();
    for (const char* k : {"infer_samples_per_s_b64", "infer_samples_per_s_b1"}) {
      const double v = run.at(k).get<double>();
      EXPECT_TRUE(std::isfinite(v) && v > 0) << k << " = " << v;
    }
  }
  EXPECT_FALSE(j["fused"].get<bool>());
  // without the flag the training rate is there
  auto full = bench("");
  EXPECT_GT(full.at("train_steps_per_s").get<double>(), 0) << full.dump();
}

TEST(BenchSpeedModes, FusedIsReportedAsRun) {
  auto j = bench("--infer-only --fused");
  EXPECT_TRUE(j.at("fused").get<bool>()) << j.dump();
  EXPECT_GT(j.at("infer_samples_per_s_b64").get<double>(), 0);
}
