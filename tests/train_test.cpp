// End-to-end training through the CLI: exact resume after kill -9 and after Ctrl-C.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_util.h"

using namespace braid::test;
namespace fs = std::filesystem;

namespace {

const char* kRecipe = R"(
task: classify
seed: 3
threads: 1
data:
  workers: 2
  image: {size: 16}
  audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 16}
  text: {vocab: 40}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4, 8], dim: 16}
    audio: {name: audio_cnn, channels: [4], dim: 16}
    text: {name: text_bow, embed: 16, dim: 16, dropout: 0.2}
  head: {hidden: [16], dropout: 0.3}
train: {epochs: 4, batch_size: 4, lr: 0.01, warmup_steps: 3, checkpoint_every: 5, eval_every: 7}
)";

Dataset dataset() {
  Dataset d;
  d.dir = temp_dir("train");
  ToyOptions o;
  o.n = 72;
  d.manifest = make_toy_dataset(d.dir + "/data", o);
  d.recipe = d.dir + "/recipe.yaml";
  write_file(d.recipe, kRecipe);
  return d;
}

void expect_same_weights(const std::string& a, const std::string& b) {
  torch::serialize::InputArchive x, y;
  x.load_from(a);
  y.load_from(b);
  auto keys = x.keys();
  ASSERT_EQ(keys, y.keys());
  ASSERT_FALSE(keys.empty());
  for (const auto& k : keys) {
    torch::Tensor tx, ty;
    x.read(k, tx, true);
    y.read(k, ty, true);
    EXPECT_TRUE(torch::equal(tx, ty)) << "tensor " << k << " differs; max diff "
                                      << (tx.to(torch::kDouble) - ty.to(torch::kDouble)).abs().max().item<double>();
  }
}

}  // namespace

TEST(Train, KillNineThenResumeEqualsUninterruptedRun) {
  auto d = dataset();
  const std::string ref = d.dir + "/ref", cut = d.dir + "/cut";
  auto r = run_braid(train_args(d, ref));
  ASSERT_EQ(r.code, 0) << r.err;
  auto ref_losses = train_losses(ref);
  ASSERT_GT(ref_losses.size(), 30u);

  pid_t pid = spawn_braid(train_args(d, cut), d.dir + "/cut.log");
  ASSERT_TRUE(wait_for_step(pid, cut, 17, 120, true)) << "the run ended before it could be killed: " << read_file(d.dir + "/cut.log");
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  int64_t killed_at = last_logged_step(cut + "/metrics.jsonl");
  ASSERT_LT(killed_at, static_cast<int64_t>(ref_losses.size())) << "killed after the end";

  auto res = run_braid(train_args(d, cut) + " --resume");
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_NE(res.err.find("resuming"), std::string::npos) << res.err;
  auto cut_losses = train_losses(cut);
  ASSERT_EQ(cut_losses.size(), ref_losses.size());
  for (size_t i = 0; i < ref_losses.size(); ++i) {
    EXPECT_EQ(cut_losses[i].first, ref_losses[i].first);
    EXPECT_EQ(cut_losses[i].second, ref_losses[i].second) << "step " << ref_losses[i].first << " (killed at "
                                                           << killed_at << ")";
  }
  expect_same_weights(ref + "/model.pt", cut + "/model.pt");
  expect_same_weights(ref + "/checkpoints/best.pt", cut + "/checkpoints/best.pt");
}

TEST(Train, SecondTrainerOfALiveRunIsRefusedAndTheLockDiesWithItsHolder) {
  auto d = dataset();
  const std::string run = d.dir + "/locked";
  pid_t pid = spawn_braid(train_args(d, run), d.dir + "/locked.log");
  ASSERT_TRUE(wait_for_step(pid, run, 8, 120, true)) << read_file(d.dir + "/locked.log");
  kill(pid, SIGSTOP);  // the holder stays alive (and holds the lock) while the others try
  const std::string holder = "pid " + std::to_string(pid);
  for (const char* extra : {"", " --resume"}) {
    auto again = run_braid(train_args(d, run) + extra);
    EXPECT_EQ(again.code, 2) << extra << again.err;
    EXPECT_NE(again.err.find("another braid process is training this run"), std::string::npos) << again.err;
    EXPECT_NE(again.err.find(holder), std::string::npos) << again.err;
  }
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  auto res = run_braid(train_args(d, run) + " --resume");  // the kernel released the lock with its holder
  EXPECT_EQ(res.code, 0) << res.err;
  EXPECT_TRUE(fs::exists(run + "/model.pt"));
}

TEST(Train, InterruptWritesCheckpointAndExits130) {
  auto d = dataset();
  const std::string run = d.dir + "/int";
  pid_t pid = spawn_braid(train_args(d, run), d.dir + "/int.log");
  ASSERT_TRUE(wait_for_step(pid, run, 8, 120, true)) << read_file(d.dir + "/int.log");
  kill(pid, SIGINT);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 130) << read_file(d.dir + "/int.log");
  // no temp files left behind, and the checkpoint loads
  for (const auto& e : fs::recursive_directory_iterator(run))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  auto res = run_braid(train_args(d, run) + " --resume");
  EXPECT_EQ(res.code, 0) << res.err;
  EXPECT_TRUE(fs::exists(run + "/model.pt"));
  // a finished run cannot be trained over by accident
  auto again = run_braid(train_args(d, run));
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
}

TEST(Train, Bf16PrecisionTrainsWithFp32MasterWeights) {
  auto d = dataset();
  const std::string run = d.dir + "/bf16";
  auto r = run_braid(train_args(d, run) + " --set precision=bf16 --set train.epochs=1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("bf16"), std::string::npos) << r.err;
  auto losses = train_losses(run);
  ASSERT_FALSE(losses.empty());
  for (const auto& [step, loss] : losses) EXPECT_TRUE(std::isfinite(loss)) << "step " << step;
  torch::serialize::InputArchive w;
  w.load_from(run + "/model.pt");
  for (const auto& k : w.keys()) {
    torch::Tensor t;
    w.read(k, t, true);
    if (t.is_floating_point()) EXPECT_EQ(t.scalar_type(), torch::kFloat) << k;
  }
  auto bad = run_braid(train_args(d, d.dir + "/fp16") + " --set precision=fp16");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("'precision'"), std::string::npos) << bad.err;
}

TEST(Train, EvalPrintsJsonAndUnimodalAndSeriesWork) {
  auto d = dataset();
  const std::string run = d.dir + "/uni";
  auto r = run_braid(train_args(d, run) + " --set model.modalities=[text] --set train.epochs=2");
  ASSERT_EQ(r.code, 0) << r.err;
  auto e = run_braid("eval " + q(run) + " --data " + q(d.manifest) + " --split test --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto j = last_json_line(e.out);
  EXPECT_EQ(j["n"].get<int64_t>(), 9);
  EXPECT_TRUE(j.contains("macro_f1"));
  // the printed accuracy is model.pt's argmax predictions against the labels, recounted here ...
  auto rc = recount_accuracy(run, d.manifest, "test");
  ASSERT_EQ(rc.n, 9);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), rc.accuracy()) << rc.correct << " of 9 recounted";
  // ... and the text names the class ("red apple fruit", ...): the model beats always answering the
  // largest class (3 of 9; this run gets 6 of 9 right)
  EXPECT_GT(j["accuracy"].get<double>(), rc.majority_share()) << e.out;
  ExpectEvalMatchesTrainingValidation(run, d.manifest);
  auto last = run_braid("eval " + q(run) + " --data " + q(d.manifest) + " --split test --weights last --json");
  ASSERT_EQ(last.code, 0) << last.err;  // the weights inside checkpoints/last.pt
  EXPECT_DOUBLE_EQ(last_json_line(last.out)["accuracy"].get<double>(),
                   recount_accuracy(run, d.manifest, "test", "last").accuracy());

  // time series + regression on an unseen manifest shape
  auto dir = temp_dir("series");
  std::string m;
  for (int i = 0; i < 40; ++i) {
    nlohmann::json rows = nlohmann::json::array();
    for (int t = 0; t < 6 + i % 3; ++t) rows.push_back({std::sin(0.3 * t * (i % 4 + 1)), 0.1 * (i % 4)});
    m += nlohmann::json({{"id", "x" + std::to_string(i)}, {"split", i % 5 == 0 ? "val" : "train"},
                         {"target", {0.25 * (i % 4), 1.0 - 0.25 * (i % 4)}}, {"series", rows}}).dump() + "\n";
  }
  write_file(dir + "/m.jsonl", m);
  write_file(dir + "/r.yaml", "task: regress\nthreads: 1\nmodel: {name: fusion_classifier, encoders: {series: {name: series_gru, hidden: 8, dim: 8}}, head: {hidden: [8]}}\ntrain: {epochs: 3, batch_size: 8, loss: ccc}\n");
  auto rr = run_braid("train " + q(dir + "/r.yaml") + " --data " + q(dir + "/m.jsonl") + " --out " + q(dir + "/run"));
  ASSERT_EQ(rr.code, 0) << rr.err;
  auto re = run_braid("eval " + q(dir + "/run") + " --data " + q(dir + "/m.jsonl") + " --split val --json");
  ASSERT_EQ(re.code, 0) << re.err;
  EXPECT_NE(re.out.find("\"ccc\""), std::string::npos) << re.out;
}
