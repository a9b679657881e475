// The `braid` CLI as a user meets it: help, versions, and one clear line for every kind of bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "test_util.h"

using namespace braid::test;
namespace fs = std::filesystem;

namespace {

const std::string kBroken = std::string(BRAID_FIXTURES) + "/broken";

const char* kRecipe = R"(
threads: 1
data: {image: {size: 8}, audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 8}, text: {vocab: 30}}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    audio: {name: audio_cnn, channels: [4], dim: 8}
    text: {name: text_bow, embed: 8, dim: 8}
    series: {name: series_gru, hidden: 4, dim: 8}
train: {epochs: 1, batch_size: 8}
)";

struct Env {
  std::string dir, manifest, recipe;
};

Env env() {
  Env e;
  e.dir = temp_dir("cli");
  e.manifest = make_toy_dataset(e.dir + "/data", ToyOptions{24, 3});
  e.recipe = e.dir + "/r.yaml";
  write_file(e.recipe, kRecipe);
  return e;
}

// Append one sample line to a copy of the toy manifest; returns the new manifest path.
std::string with_line(const Env& e, const std::string& line, const std::string& name = "m2.jsonl") {
  std::string p = e.dir + "/data/" + name;
  write_file(p, read_file(e.manifest) + line + "\n");
  return p;
}

void expect_input_error(const RunResult& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.code, 2) << r.err;
  // the error is the last line of stderr, one line, prefixed
  std::string err = r.err;
  while (!err.empty() && err.back() == '\n') err.pop_back();
  std::string last = err.substr(err.find_last_of('\n') == std::string::npos ? 0 : err.find_last_of('\n') + 1);
  EXPECT_EQ(last.rfind("braid: error: ", 0), 0u) << r.err;
  for (const auto& p : parts) EXPECT_NE(last.find(p), std::string::npos) << "'" << p << "' not in: " << last;
}

std::string train(const Env& e, const std::string& manifest, const std::string& extra = "") {
  return "train " + q(e.recipe) + " --data " + q(manifest) + " --out " + q(e.dir + "/run") + " " + extra;
}

}  // namespace

TEST(Cli, HelpAndVersion) {
  auto h = run_braid("--help");
  EXPECT_EQ(h.code, 0);
  for (const char* cmd : {"quickstart", "data", "train", "eval", "tokenizer"}) EXPECT_NE(h.out.find(cmd), std::string::npos);
  auto th = run_braid("train --help");
  EXPECT_EQ(th.code, 0);
  EXPECT_NE(th.out.find("--resume"), std::string::npos);
  auto bh = run_braid("data build --help");
  EXPECT_EQ(bh.code, 0);
  EXPECT_NE(bh.out.find("emoji"), std::string::npos);
  // --threads default, as CLI11 2.3 ("INT=2") and 2.4 ("INT [2]") print it
  EXPECT_TRUE(bh.out.find("--threads INT=2") != std::string::npos || bh.out.find("--threads INT [2]") != std::string::npos)
      << "help shows real defaults: " << bh.out;
  auto v = run_braid("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("braid "), std::string::npos);
  EXPECT_NE(run_braid("frobnicate").code, 0);
  EXPECT_NE(run_braid("train").code, 0);  // missing recipe
  EXPECT_NE(run_braid("train x.yaml --threads many --out y").code, 0);
}

TEST(Cli, DataCheckCountsAndNamesEveryBadFile) {
  auto e = env();
  auto ok = run_braid("data check " + q(e.manifest));
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("train"), std::string::npos);
  fs::copy_file(kBroken + "/truncated.png", e.dir + "/data/img/bad.png");
  fs::copy_file(kBroken + "/not_audio.wav", e.dir + "/data/wav/bad.wav");
  auto m = with_line(e, R"({"id":"bad1","split":"train","label":"class0","image":"img/bad.png"})"
                        "\n" R"({"id":"bad2","split":"train","label":"class0","audio":"wav/bad.wav"})"
                        "\n" R"({"id":"bad3","split":"train","label":"class0","image":"img/missing.png"})");
  auto r = run_braid("data check " + q(m));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("m2.jsonl:25"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.png"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("m2.jsonl:26"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.wav"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.png"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 of 27 samples"), std::string::npos) << r.err;
}

TEST(Cli, BadManifestLinesStopTrainingWithTheLine) {
  auto e = env();
  expect_input_error(run_braid(train(e, with_line(e, R"({"id":"x","split":"train",)"))), {"m2.jsonl:25", "not valid JSON"});
  expect_input_error(run_braid(train(e, with_line(e, R"({"id":"s0","split":"train","text":"x","label":"class0"})"))),
                     {"m2.jsonl:25", "duplicate id 's0'"});
  expect_input_error(run_braid(train(e, with_line(e, R"({"id":"x","split":"train","text":"x","mood":1})"))),
                     {"m2.jsonl:25", "unknown key 'mood'"});
  expect_input_error(run_braid(train(e, with_line(e, R"({"id":"x","split":"val","text":"x","label":"class9"})"))),
                     {"m2.jsonl:25", "label 'class9'", "class map"});
  expect_input_error(run_braid(train(e, e.dir + "/nope.jsonl")), {"nope.jsonl", "cannot open"});
  EXPECT_FALSE(fs::exists(e.dir + "/run/checkpoints/last.pt"));  // nothing half-made
}

TEST(Cli, CorruptFilesStopTrainingWithTheFile) {
  auto e = env();
  fs::copy_file(kBroken + "/truncated.wav", e.dir + "/data/wav/cut.wav");
  expect_input_error(run_braid(train(e, with_line(e, R"({"id":"x","split":"train","label":"class0","audio":"wav/cut.wav"})"))),
                     {"m2.jsonl:25", "cut.wav"});
  fs::copy_file(kBroken + "/nan.csv", e.dir + "/data/nan.csv");
  write_file(e.dir + "/r2.yaml", std::string(kRecipe) + "\n");
  auto m = e.dir + "/data/series.jsonl";
  write_file(m, R"({"id":"a","split":"train","label":"p","series":[[1,2],[3,4]]})" "\n"
                R"({"id":"b","split":"train","label":"q","series":"nan.csv"})" "\n");
  expect_input_error(run_braid(train(e, m)), {"series.jsonl:2", "nan.csv", "NaN"});
}

TEST(Cli, BadRecipesNameTheKey) {
  auto e = env();
  auto recipe = [&](const std::string& text) {
    write_file(e.dir + "/bad.yaml", text);
    return "train " + q(e.dir + "/bad.yaml") + " --data " + q(e.manifest) + " --out " + q(e.dir + "/r" + std::to_string(text.size()));
  };
  expect_input_error(run_braid(recipe(std::string(kRecipe) + "trian: {epochs: 2}\n")), {"bad.yaml", "unknown recipe key 'trian'"});
  expect_input_error(run_braid(recipe(std::string(kRecipe) + "seed: abc\n")), {"bad.yaml", "'seed'", "expected an integer"});
  std::string r = kRecipe;
  r.replace(r.find("image_cnn"), 9, "image_rnn");
  expect_input_error(run_braid(recipe(r)), {"unknown encoder 'image_rnn'", "model.encoders.image.name", "image_cnn"});
  r = kRecipe;
  r.replace(r.find("dim: 8}"), 7, "dims: 8}");
  expect_input_error(run_braid(recipe(r)), {"unknown recipe key 'model.encoders.image.dims'"});
  expect_input_error(run_braid(recipe("model: [1, 2\n")), {"bad.yaml", "invalid YAML"});
  expect_input_error(run_braid(train(e, e.manifest, "--set train.lr=-1")), {"train.lr", "positive"});
  expect_input_error(run_braid(train(e, e.manifest, "--set model.modalities=[smell]")), {"unknown modality 'smell'"});
  expect_input_error(run_braid(train(e, e.manifest, "--set task=cluster")), {"'task'", "classify, regress, align or generate"});
}

TEST(Cli, BenchGemmReportsARateAndRejectsBadSizes) {
  auto r = run_braid("bench gemm --n 64 --repeats 2 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["gflops"].get<double>(), 0.0);
  EXPECT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["threads"].get<int>(), 1);
  EXPECT_TRUE(j.contains("openblas_coretype"));
  expect_input_error(run_braid("bench gemm --n 3"), {"--n", "16"});
}

// `braid bench speed`: one JSON line whose figures come from loops that really ran. The steps and
// repeats are the ones asked for, every repeat has a positive finite rate of each kind, the reported
// rate is the median of the repeats, the timed seconds fit in the command's wall time, and the model
// is the one `braid train` builds from the same recipe (same parameter count).
TEST(Cli, BenchSpeedReportsMeasuredRatesOfTheRecipesModel) {
  auto e = env();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_braid("bench speed " + q(e.recipe) + " --data " + q(e.manifest) +
                     " --steps 3 --repeats 3 --warmup 1 --threads 1 --json");
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  ASSERT_EQ(out.find('\n'), std::string::npos) << "expected one JSON line: " << r.out;
  auto j = nlohmann::json::parse(out);
  for (const char* k : {"train_steps_per_s", "infer_samples_per_s_b64", "infer_samples_per_s_b1", "runs", "threads",
                        "parameters", "batch_size", "steps", "repeats", "device", "precision", "adamw"})
    EXPECT_TRUE(j.contains(k)) << k << " missing: " << out;
  EXPECT_EQ(j["steps"].get<int64_t>(), 3);
  EXPECT_EQ(j["repeats"].get<int64_t>(), 3);
  EXPECT_EQ(j["threads"].get<int>(), 1);
  EXPECT_EQ(j["batch_size"].get<int64_t>(), 8);  // train.batch_size; the toy train split has 15 samples
  EXPECT_EQ(j["device"].get<std::string>(), "cpu");
  EXPECT_EQ(j["precision"].get<std::string>(), "fp32");
  EXPECT_FALSE(j["adamw"].get<std::string>().empty());
  ASSERT_EQ(j["runs"].size(), 3u) << out;
  const char* rates[] = {"train_steps_per_s", "infer_samples_per_s_b64", "infer_samples_per_s_b1"};
  double timed = 0;
  // Upper bounds no real loop reaches (a training step of this model in under 10 µs, a forward pass
  // in under 1 µs): a loop that did not run times ~0 s and reports a rate far above them.
  const double ceiling[] = {1e5, 1e7, 1e6};
  for (const auto& run : j["runs"])
    for (int i = 0; i < 3; ++i) {
      const double v = run.at(rates[i]).get<double>();
      EXPECT_TRUE(std::isfinite(v) && v > 0) << rates[i] << " = " << v;
      EXPECT_LT(v, ceiling[i]) << rates[i];
    }
  for (const auto& run : j["runs"]) {
    timed += 3 / run["train_steps_per_s"].get<double>() + 3 * 8 / run["infer_samples_per_s_b64"].get<double>() +
             12 / run["infer_samples_per_s_b1"].get<double>();
  }
  EXPECT_LT(timed, wall) << "the timed loops took longer than the whole command";
  for (const char* k : rates) {
    std::vector<double> v;
    for (const auto& run : j["runs"]) v.push_back(run[k].get<double>());
    std::sort(v.begin(), v.end());
    EXPECT_EQ(j[k].get<double>(), v[1]) << k << " is not the median of the repeats";
  }
  // the same recipe trained: the model has as many parameters as bench speed timed
  auto tr = run_braid(train(e, e.manifest));
  ASSERT_EQ(tr.code, 0) << tr.err;
  auto summary = nlohmann::json::parse(read_file(e.dir + "/run/summary.json"));
  EXPECT_EQ(j["parameters"].get<int64_t>(), summary["parameters"].get<int64_t>());
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
  // the arguments are checked
  expect_input_error(run_braid("bench speed " + q(e.recipe) + " --data " + q(e.manifest) + " --steps 0"), {"steps"});
}
