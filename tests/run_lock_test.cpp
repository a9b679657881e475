// Runs under contention and under a full disk, through the CLI (issue 18 "Runs"): two trainers started at
// the same moment into one --out, and a checkpoint write that fails mid-way (a file-size limit, the same
// EFBIG a full disk gives as ENOSPC: the write fails part-way through the temporary file).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

using namespace braid::test;
namespace fs = std::filesystem;

namespace {

const char* kRecipe = R"(
task: classify
seed: 5
threads: 1
data:
  workers: 1
  image: {size: 16}
  text: {vocab: 40}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4, 8], dim: 16}
    text: {name: text_bow, embed: 16, dim: 16}
  head: {hidden: [16]}
train: {epochs: 3, batch_size: 4, lr: 0.01, checkpoint_every: 4, eval_every: 100}
)";

Dataset dataset(const std::string& tag) {
  Dataset d;
  d.dir = temp_dir(tag);
  ToyOptions o;
  o.n = 48;
  o.audio = false;
  d.manifest = make_toy_dataset(d.dir + "/data", o);
  d.recipe = d.dir + "/recipe.yaml";
  write_file(d.recipe, kRecipe);
  return d;
}

int wait_exit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// braid `args` with its files limited to `max_bytes` each (RLIMIT_FSIZE; SIGXFSZ ignored, so a write past
// the limit fails with EFBIG instead of killing the process). Returns the exit code; output in `log`.
int run_with_file_limit(const std::string& args, const std::string& log, rlim_t max_bytes) {
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {max_bytes, max_bytes};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(126);
    // The log goes to a pipe-free file opened before the limit matters (it stays far below it).
    const std::string cmd = "exec " + std::string(BRAID_EXE) + " " + args + " >" + q(log) + " 2>&1 </dev/null";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return wait_exit(pid);
}

}  // namespace

// Two `braid train` into the same fresh --out at the same moment: the run directory's lock lets exactly one
// train; the other exits 2 at once, naming the holder's pid. The run that results is whole.
TEST(RunLock, TwoTrainersStartedTogetherOneWinsTheOtherNamesIt) {
  auto d = dataset("runlock");
  const std::string run = d.dir + "/run";
  // 200 epochs (2,400 steps, ~6 s) keep the first trainer alive well past the second one's start-up even on a
  // loaded machine: a trainer that starts after the run has ended finds a finished run instead (a
  // different refusal, "already holds a run"), which is not the race this test is about.
  const std::string args = train_args(d, run) + " --set train.epochs=200";
  const pid_t a = spawn_braid(args, d.dir + "/a.log");
  const pid_t b = spawn_braid(args, d.dir + "/b.log");
  const int ca = wait_exit(a), cb = wait_exit(b);
  const std::string la = read_file(d.dir + "/a.log"), lb = read_file(d.dir + "/b.log");
  ASSERT_TRUE((ca == 0 && cb == 2) || (ca == 2 && cb == 0)) << "exit codes " << ca << " and " << cb << "\nA:\n"
                                                            << la << "\nB:\n" << lb;
  const pid_t winner = ca == 0 ? a : b;
  const std::string& loser_log = ca == 0 ? lb : la;
  EXPECT_NE(loser_log.find("another braid process is training this run"), std::string::npos) << loser_log;
  EXPECT_NE(loser_log.find("pid " + std::to_string(winner)), std::string::npos) << loser_log;
  EXPECT_EQ(loser_log.find('\n'), loser_log.size() - 1) << "one line: " << loser_log;
  EXPECT_TRUE(fs::exists(run + "/model.pt"));
  EXPECT_TRUE(fs::exists(run + "/summary.json"));
  EXPECT_GT(last_logged_step(run + "/metrics.jsonl"), 10);
}

// A checkpoint write that fails part-way: one clear error line, the previous checkpoint untouched (same
// bytes, no temporary file left), and --resume continues from it to the end.
TEST(RunLock, CheckpointWriteFailingMidwayKeepsThePreviousCheckpoint) {
  auto d = dataset("fulldisk");
  const std::string run = d.dir + "/run";
  const pid_t pid = spawn_braid(train_args(d, run), d.dir + "/first.log");
  ASSERT_TRUE(wait_for_step(pid, run, 5, 120, true)) << read_file(d.dir + "/first.log");
  kill(pid, SIGINT);  // a clean stop (kill -9 could land inside a checkpoint write and leave its temp file)
  ASSERT_EQ(wait_exit(pid), 130) << read_file(d.dir + "/first.log");
  const std::string last = run + "/checkpoints/last.pt";
  const std::string before = read_file(last);
  ASSERT_GT(before.size(), 4096u);
  const int64_t step_before = last_logged_step(run + "/metrics.jsonl");

  // Half the checkpoint's size: the logs and metrics stay far below it, the next checkpoint does not fit.
  const std::string log = d.dir + "/limited.log";
  const int code = run_with_file_limit(train_args(d, run) + " --resume", log, before.size() / 2);
  const std::string out = read_file(log);
  ASSERT_NE(code, 126) << "setrlimit failed";
  EXPECT_NE(code, 0) << out;
  const std::string err = last_line(out);
  EXPECT_EQ(err.rfind("braid: error: ", 0), 0u) << out;
  EXPECT_NE(err.find("last.pt"), std::string::npos) << "the error names the checkpoint: " << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << "the error says why: " << err;
  EXPECT_GT(last_logged_step(run + "/metrics.jsonl"), step_before) << "the resumed run trained before failing";

  EXPECT_EQ(read_file(last), before) << "the previous checkpoint changed";
  for (const auto& e : fs::recursive_directory_iterator(run))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temporary file left: " << e.path();

  auto res = run_braid(train_args(d, run) + " --resume");
  ASSERT_EQ(res.code, 0) << res.err;
  EXPECT_TRUE(fs::exists(run + "/model.pt"));
  EXPECT_NE(read_file(last), before) << "the resumed run checkpointed again";
}

// Ctrl-C while the trainer validates: the step is checkpointed with its validation owed, and --resume runs
// that validation first, so the finished run equals an uninterrupted one (metrics' validation lines, best.pt,
// model.pt). Validation here takes most of each step (50 val samples, eval_every 1), so the interrupt lands
// in it at the first or a later try.
TEST(RunLock, InterruptDuringValidationCheckpointsTheStepAndResumeValidatesIt) {
  Dataset d;
  d.dir = temp_dir("valint");
  ToyOptions o;
  o.n = 200;
  o.audio = false;
  d.manifest = make_toy_dataset(d.dir + "/data", o);
  d.recipe = d.dir + "/recipe.yaml";
  std::string recipe = kRecipe;
  const std::string from = "train: {epochs: 3, batch_size: 4, lr: 0.01, checkpoint_every: 4, eval_every: 100}";
  recipe.replace(recipe.find(from), from.size(), "train: {epochs: 1, batch_size: 4, lr: 0.01, checkpoint_every: 1000, eval_every: 1}");
  write_file(d.recipe, recipe);

  const std::string ref = d.dir + "/ref", run = d.dir + "/run";
  auto r = run_braid(train_args(d, ref));
  ASSERT_EQ(r.code, 0) << r.err;

  bool landed = false;
  for (int attempt = 0; attempt < 8 && !landed; ++attempt) {
    const std::string log = d.dir + "/try" + std::to_string(attempt) + ".log";
    const pid_t pid = spawn_braid(train_args(d, run) + (attempt ? " --resume" : ""), log);
    const int64_t at = last_logged_step(run + "/metrics.jsonl") + 3;
    ASSERT_TRUE(wait_for_step(pid, run, at, 120, false)) << read_file(log);
    kill(pid, SIGINT);
    ASSERT_EQ(wait_exit(pid), 130) << read_file(log);
    landed = read_file(log).find("interrupted during validation") != std::string::npos;
  }
  ASSERT_TRUE(landed) << "8 interrupts, none during validation";
  auto res = run_braid(train_args(d, run) + " --resume");
  ASSERT_EQ(res.code, 0) << res.err;
  auto val_steps = [](const std::string& dir) {
    std::vector<std::pair<int64_t, double>> v;
    for (const auto& j : read_jsonl(dir + "/metrics.jsonl"))
      if (j.contains("split")) v.emplace_back(j["step"].get<int64_t>(), j.value("accuracy", -1.0));
    return v;
  };
  EXPECT_EQ(val_steps(run), val_steps(ref)) << "every step validated once, with the same scores";
  for (const char* f : {"/checkpoints/best.pt", "/model.pt"}) {
    torch::serialize::InputArchive x, y;
    x.load_from(run + f);
    y.load_from(ref + f);
    ASSERT_EQ(x.keys(), y.keys()) << f;
    for (const auto& k : x.keys()) {
      torch::Tensor a, b;
      x.read(k, a, true);
      y.read(k, b, true);
      EXPECT_TRUE(torch::equal(a, b)) << f << ": tensor " << k << " differs from the uninterrupted run's";
    }
  }
}
