// Data-parallel training (train/distributed.h): the sampler's shards, 2 ranks vs 1 rank with
// the doubled batch, dead and hung peers, bad flags, resume with another world size.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "braid/core/error.h"
#include "braid/data/loader.h"
#include "braid/train/distributed.h"
#include "test_util.h"
#include "braid/core/fs.h"

using namespace braid::test;
namespace fs = std::filesystem;

namespace {

// No BatchNorm and no dropout: with them 2 ranks x B cannot equal 1 rank x 2B (batch
// statistics over B rows instead of 2B; each rank's own dropout masks).
const char* kRecipe = R"(
task: classify
seed: 5
threads: 1
data:
  workers: 1
  text: {vocab: 40}
  val_split: none
model:
  name: fusion_classifier
  encoders:
    text: {name: text_bow, embed: 16, dim: 16, dropout: 0}
    series: {name: series_gru, hidden: 8, dim: 8}
  head: {hidden: [16], dropout: 0}
train: {epochs: 3, batch_size: 4, lr: 0.02, warmup_steps: 2, checkpoint_every: 5}
)";

// 64 samples: 40 train (a multiple of 2 x 4, so no shard needs padding), 16 val, 8 test.
Dataset dataset(const std::string& tag, const std::string& recipe = kRecipe) {
  Dataset d;
  d.dir = temp_dir(tag);
  ToyOptions o;
  o.n = 64;
  o.image = o.audio = false;
  o.text = o.series = true;
  d.manifest = make_toy_dataset(d.dir + "/data", o);
  d.recipe = d.dir + "/recipe.yaml";
  write_file(d.recipe, recipe);
  return d;
}

std::map<std::string, torch::Tensor> weights(const std::string& path) {
  torch::serialize::InputArchive ar;
  ar.load_from(path);
  std::map<std::string, torch::Tensor> m;
  for (const auto& k : ar.keys()) {
    torch::Tensor t;
    ar.read(k, t, true);
    m[k] = t;
  }
  return m;
}

void expect_close_weights(const std::string& a, const std::string& b, double atol) {
  auto x = weights(a), y = weights(b);
  ASSERT_EQ(x.size(), y.size());
  ASSERT_FALSE(x.empty());
  for (const auto& [k, t] : x) {
    ASSERT_TRUE(y.count(k)) << k;
    EXPECT_TRUE(AllClose(y[k], t, atol, k));
  }
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Waits for `pid` at most `seconds`; returns its exit code (128 + signal), or -1 on timeout.
int wait_exit(pid_t pid, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t c; f >> c;) out.push_back(c);
  return out;
}

// The value of environment variable `name` of a running process ("" when unset or unreadable).
std::string env_var(pid_t pid, const std::string& name) {
  std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = name + "=";
  for (size_t i = 0; i < env.size();) {
    size_t e = env.find('\0', i);
    if (e == std::string::npos) e = env.size();
    if (env.compare(i, key.size(), key) == 0) return env.substr(i + key.size(), e - i - key.size());
    i = e + 1;
  }
  return "";
}

// The RANK variable of a running process (-1 when unreadable).
int rank_of(pid_t pid) {
  std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
  for (size_t i = 0; i < env.size();) {
    size_t e = env.find('\0', i);
    if (e == std::string::npos) e = env.size();
    if (env.compare(i, 5, "RANK=") == 0) return std::stoi(env.substr(i + 5, e - i - 5));
    i = e + 1;
  }
  return -1;
}

std::string env_of(int rank, int world, int port) {
  return "RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(world) +
         " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port);
}

}  // namespace

// Rank r's batch g holds exactly the single-process batch g's positions congruent to r: the
// union over ranks of batch g is the single-process batch of size B x world.
TEST(Distributed, ShardsPartitionEachGlobalBatch) {
  auto dir = temp_dir("shard");
  ToyOptions o;
  o.n = 64;
  auto manifest = std::make_shared<braid::data::Manifest>(braid::data::Manifest::load(make_toy_dataset(dir, o)));
  auto idx = manifest->split_indices("train");  // 40 samples
  braid::data::PreprocessOptions po;
  auto pre = std::make_shared<braid::data::Preprocessor>(po, std::vector<std::string>{"series"}, nullptr);
  braid::data::LoaderOptions lo;
  lo.seed = 11;
  for (int world : {2, 3}) {
    lo.batch_size = 4 * world;
    braid::data::Loader single(manifest, idx, pre, lo, braid::data::Targets::None);
    lo.batch_size = 4;
    std::vector<std::unique_ptr<braid::data::Loader>> ranks;
    for (int r = 0; r < world; ++r) {
      ranks.push_back(std::make_unique<braid::data::Loader>(manifest, idx, pre, lo, braid::data::Targets::None));
      ranks.back()->set_shard(r, world);
    }
    for (int64_t epoch : {0, 1}) {
      auto order = single.epoch_order(epoch);
      std::vector<std::vector<int64_t>> shard;
      for (auto& l : ranks) {
        shard.push_back(l->epoch_order(epoch));
        EXPECT_EQ(l->batches_per_epoch(), ranks[0]->batches_per_epoch()) << "every rank takes the same steps";
        EXPECT_EQ(static_cast<int64_t>(shard.back().size()), (40 + world - 1) / world);
      }
      EXPECT_EQ(ranks[0]->batches_per_epoch(), single.batches_per_epoch());
      // padded to a multiple of world by repeating the first samples of the order
      auto padded = order;
      for (size_t i = 0; padded.size() % world; ++i) padded.push_back(order[i]);
      std::multiset<int64_t> all(padded.begin(), padded.end()), got;
      for (int64_t g = 0; g < single.batches_per_epoch(); ++g) {
        std::multiset<int64_t> want, have;
        for (int64_t p = g * 4 * world; p < std::min<int64_t>((g + 1) * 4 * world, padded.size()); ++p)
          want.insert(padded[p]);
        for (int r = 0; r < world; ++r)
          for (int64_t k = g * 4; k < std::min<int64_t>((g + 1) * 4, shard[r].size()); ++k) have.insert(shard[r][k]);
        EXPECT_EQ(have, want) << "world " << world << " epoch " << epoch << " batch " << g;
        got.insert(have.begin(), have.end());
      }
      EXPECT_EQ(got, all) << "no sample lost or duplicated beyond the padding";
    }
  }
  EXPECT_THROW(braid::data::Loader(manifest, idx, pre, lo, braid::data::Targets::None).set_shard(2, 2),
               braid::InputError);
}

// The equivalence: 2 ranks x batch 4 == 1 rank x batch 8, step by step and in the final
// weights, for both all-reduce modes. Exact up to fp32 summation order: the gradient of the
// mean loss over 8 rows equals the mean of the two ranks' gradients over their 4 rows each.
TEST(Distributed, TwoRanksEqualOneRankWithDoubleBatch) {
  if (!braid::train::distributed_available()) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  auto d = dataset("ddp_eq");
  const std::string one = d.dir + "/one", two = d.dir + "/two", after = d.dir + "/after";
  auto r1 = run_braid(train_args(d, one) + " --set train.batch_size=8");
  ASSERT_EQ(r1.code, 0) << r1.err;
  auto r2 = run_braid(train_args(d, two) + " --nproc 2");
  ASSERT_EQ(r2.code, 0) << r2.err << read_file(two + "/rank1.log");
  auto r3 = run_braid(train_args(d, after) + " --nproc 2 --allreduce after");
  ASSERT_EQ(r3.code, 0) << r3.err << read_file(after + "/rank1.log");
  // SGD too: AdamW is nearly blind to a wrong gradient scale (e.g. a sum instead of a mean)
  const std::string sgd1 = d.dir + "/sgd1", sgd2 = d.dir + "/sgd2";
  auto r4 = run_braid(train_args(d, sgd1) + " --set train.batch_size=8 --set train.optimizer=sgd");
  ASSERT_EQ(r4.code, 0) << r4.err;
  auto r5 = run_braid(train_args(d, sgd2) + " --nproc 2 --set train.optimizer=sgd");
  ASSERT_EQ(r5.code, 0) << r5.err << read_file(sgd2 + "/rank1.log");
  EXPECT_NE(r2.err.find("global batch 8 (4 x 2)"), std::string::npos) << r2.err;
  EXPECT_NE(r3.err.find("after backward"), std::string::npos) << r3.err;

  for (const auto& [ref, run] : std::vector<std::pair<std::string, std::string>>{{one, two}, {one, after}, {sgd1, sgd2}}) {
    auto l1 = train_losses(ref);
    ASSERT_EQ(l1.size(), 15u);  // 3 epochs x 40 / 8
    auto l2 = train_losses(run);
    ASSERT_EQ(l2.size(), l1.size()) << run;
    double worst = 0;
    for (size_t i = 0; i < l1.size(); ++i) {
      EXPECT_EQ(l2[i].first, l1[i].first);
      EXPECT_NEAR(l2[i].second, l1[i].second, 1e-5 * std::max(1.0, std::abs(l1[i].second)))
          << run << " step " << l1[i].first;
      worst = std::max(worst, std::abs(l2[i].second - l1[i].second));
    }
    std::printf("%s: worst loss difference %.3g over %zu steps\n", run.c_str(), worst, l1.size());
    expect_close_weights(ref + "/model.pt", run + "/model.pt", 1e-5);
    // the loss really moved, so the comparison compares training, not initial weights
    EXPECT_LT(l1.back().second, l1.front().second) << ref;
    auto s = nlohmann::json::parse(read_file(run + "/summary.json"));
    EXPECT_EQ(s["world_size"], 2);
    EXPECT_EQ(s["global_batch"], 8);
    EXPECT_TRUE(fs::exists(run + "/rank1.log"));
  }
}

// CLIP, SigLIP and single_tower's ITC contrast each row with the whole batch: with the embeddings
// gathered from every rank (train.gather_negatives, the default) 2 ranks x B equal 1 rank x 2B too;
// each rank's own B rows alone (gather_negatives: false) give a different loss.
TEST(Distributed, ContrastiveLossesSeeEveryRanksRows) {
  if (!braid::train::distributed_available()) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  const char* recipe = R"(
task: align
seed: 5
threads: 1
data:
  workers: 1
  image: {size: 16}
  text: {vocab: 40}
  val_split: none
model:
  name: dual_tower
  encoders:
    image: {name: image_vit, patch: 4, dim: 16, depth: 1, heads: 2}
    text: {name: text_transformer, dim: 16, layers: 1, heads: 2, max_len: 8, dropout: 0}
  embed_dim: 8
train: {epochs: 3, batch_size: 4, optimizer: sgd, lr: 0.05, warmup_steps: 2, checkpoint_every: 5}
)";
  // SGD: the key bias of attention gets a zero gradient in exact arithmetic (softmax ignores a
  // per-row constant), and AdamW would turn its rounding noise into full-size, run-dependent steps
  Dataset d;
  d.dir = temp_dir("ddp_clip");
  ToyOptions o;
  o.n = 64;
  o.audio = false;
  d.manifest = make_toy_dataset(d.dir + "/data", o);
  d.recipe = d.dir + "/recipe.yaml";
  write_file(d.recipe, recipe);
  // single_tower's ITC is gathered too; its ITM and MLM terms (per-rank hard negatives and masks)
  // are weighted 0 here so that the runs can be compared
  const std::vector<std::pair<std::string, std::string>> cases{
      {"clip", " --set model.loss=clip"},
      {"siglip", " --set model.loss=siglip"},
      {"single_tower", " --set 'model={name: single_tower, dim: 16, depth: 1, heads: 2, patch: 4, embed_dim: 8, "
                       "dropout: 0, weights: {itc: 1, itm: 0, mlm: 0}}'"}};
  for (const auto& [loss, set] : cases) {
    const std::string one = d.dir + "/one_" + loss, two = d.dir + "/two_" + loss, local = d.dir + "/local_" + loss;
    auto r1 = run_braid(train_args(d, one) + set + " --set train.batch_size=8");
    ASSERT_EQ(r1.code, 0) << r1.err;
    auto r2 = run_braid(train_args(d, two) + set + " --nproc 2");
    ASSERT_EQ(r2.code, 0) << r2.err << read_file(two + "/rank1.log");
    auto r3 = run_braid(train_args(d, local) + set + " --nproc 2 --set train.gather_negatives=false");
    ASSERT_EQ(r3.code, 0) << r3.err << read_file(local + "/rank1.log");
    auto l1 = train_losses(one), l2 = train_losses(two), l3 = train_losses(local);
    ASSERT_EQ(l1.size(), 15u);  // 3 epochs x 40 / 8
    ASSERT_EQ(l2.size(), l1.size());
    ASSERT_EQ(l3.size(), l1.size());
    double worst = 0, local_diff = 0;
    for (size_t i = 0; i < l1.size(); ++i) {
      EXPECT_NEAR(l2[i].second, l1[i].second, 1e-5 * std::max(1.0, std::abs(l1[i].second))) << loss << " step " << i;
      worst = std::max(worst, std::abs(l2[i].second - l1[i].second));
      local_diff = std::max(local_diff, std::abs(l3[i].second - l1[i].second));
    }
    std::printf("%s: worst loss difference %.3g gathered, %.3g rank-local\n", loss.c_str(), worst, local_diff);
    expect_close_weights(one + "/model.pt", two + "/model.pt", 1e-5);
    EXPECT_GT(local_diff, 1e-3) << loss << ": rank-local batches should change the loss";
    EXPECT_LT(l1.back().second, l1.front().second) << loss;
  }
}

// A rank killed with kill -9 makes its peer fail at once (closed socket), with a message that
// names the rank and the all-reduce; a stopped (hung) peer is reported after --dist-timeout.
TEST(Distributed, DeadOrHungPeerIsReportedWithinTheTimeout) {
  if (!braid::train::distributed_available()) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  auto d = dataset("ddp_kill");
  const std::string args = train_args(d, d.dir + "/run") + " --set train.epochs=1000 --dist-timeout 6";
  for (bool hang : {false, true}) {
    braid::remove_tree(d.dir + "/run");
    int port = free_port();
    pid_t r0 = spawn_braid(args, d.dir + "/r0.log", env_of(0, 2, port));
    pid_t r1 = spawn_braid(args, d.dir + "/r1.log", env_of(1, 2, port));
    ASSERT_TRUE(wait_for_step(r0, d.dir + "/run", 3, 60, false)) << read_file(d.dir + "/r0.log") << read_file(d.dir + "/r1.log");
    auto t0 = std::chrono::steady_clock::now();
    kill(r1, hang ? SIGSTOP : SIGKILL);
    int code = wait_exit(r0, 30);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    kill(r1, SIGKILL);
    waitpid(r1, nullptr, 0);
    if (code < 0) kill(r0, SIGKILL);
    ASSERT_EQ(code, 3) << "hang=" << hang << ": " << read_file(d.dir + "/r0.log");
    auto log = read_file(d.dir + "/r0.log");
    EXPECT_NE(log.find("braid: error: distributed: rank 0 of 2"), std::string::npos) << log;
    EXPECT_LT(took, hang ? 20.0 : 5.0) << log;
    if (hang) EXPECT_GT(took, 4.0) << "a stopped peer is only detected by the timeout";
    std::printf("%s peer reported after %.1f s\n", hang ? "hung" : "dead", took);
  }
}

// Under the launcher: a rank killed with kill -9 stops the whole job, and the launcher names it.
TEST(Distributed, LauncherStopsAllRanksWhenOneDies) {
  if (!braid::train::distributed_available()) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  auto d = dataset("ddp_launch");
  const std::string run = d.dir + "/run";
  pid_t pid = spawn_braid(train_args(d, run) + " --set train.epochs=1000 --nproc 2", d.dir + "/launch.log");
  ASSERT_TRUE(wait_for_step(pid, run, 3, 60, false)) << read_file(d.dir + "/launch.log");
  auto kids = children_of(pid);
  ASSERT_EQ(kids.size(), 2u);
  pid_t rank1 = rank_of(kids[0]) == 1 ? kids[0] : kids[1];
  ASSERT_EQ(rank_of(rank1), 1);
  // The launcher hands both ranks one random job token (32 hex digits).
  const std::string token = env_var(kids[0], "BRAID_JOB_TOKEN");
  EXPECT_EQ(token.size(), 32u) << token;
  EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
  EXPECT_EQ(env_var(kids[1], "BRAID_JOB_TOKEN"), token);
  kill(rank1, SIGKILL);
  int code = wait_exit(pid, 20);
  if (code < 0) kill(pid, SIGKILL);
  auto log = read_file(d.dir + "/launch.log");
  EXPECT_EQ(code, 137) << log;
  EXPECT_NE(log.find("rank 1 of 2 failed with exit code 137 (signal 9)"), std::string::npos) << log;
  for (auto k : kids) EXPECT_NE(kill(k, 0), 0) << "rank process " << k << " still running";
}

TEST(Distributed, BadFlagsAreOneLineErrors) {
  auto d = dataset("ddp_flags");
  const std::string base = train_args(d, d.dir + "/run");
  struct Case {
    std::string flags, env, want;
  } cases[] = {
      {"--world-size 0", "", "--world-size"},
      {"--rank 2 --world-size 2", "", "--rank"},
      {"--rank -1 --world-size 2", "", "--rank"},
      {"--nproc 0", "", "--nproc"},
      {"--nproc 2 --rank 1", "", "--nproc"},
      {"--allreduce sometimes", "", "--allreduce"},
      {"--dist-timeout 0 --world-size 2", "", "--dist-timeout"},
      {"--master-port 70000 --world-size 2", "", "--master-port"},
      {"", "WORLD_SIZE=two", "WORLD_SIZE"},
      {"", "RANK=3 WORLD_SIZE=2", "RANK"},
  };
  for (const auto& c : cases) {
    RunResult r;
    if (c.env.empty()) {
      r = run_braid(base + " " + c.flags);
    } else {  // run_braid has no environment parameter: go through env(1)
      pid_t pid = spawn_braid(base + " " + c.flags, d.dir + "/env.log", c.env);
      r.code = wait_exit(pid, 30);
      r.err = read_file(d.dir + "/env.log");
    }
    EXPECT_EQ(r.code, 2) << c.flags << c.env << ": " << r.err;
    EXPECT_NE(r.err.find(c.want), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
  EXPECT_FALSE(fs::exists(d.dir + "/run/checkpoints")) << "nothing trained";
}

// A job of 2 ranks stopped with Ctrl-C resumes with 1 rank: the step is re-derived from the
// position in the epoch, and the run finishes with the 1-rank step count.
TEST(Distributed, TwoRankRunResumesWithOneRank) {
  if (!braid::train::distributed_available()) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  auto d = dataset("ddp_resume");
  const std::string run = d.dir + "/run";
  pid_t pid = spawn_braid(train_args(d, run) + " --set train.epochs=60 --nproc 2", d.dir + "/launch.log");
  ASSERT_TRUE(wait_for_step(pid, run, 12, 60, false)) << read_file(d.dir + "/launch.log");
  kill(pid, SIGINT);
  int code = wait_exit(pid, 30);
  ASSERT_EQ(code, 130) << read_file(d.dir + "/launch.log");
  int64_t stopped = last_logged_step(run + "/metrics.jsonl");
  ASSERT_LT(stopped, 300) << "the run finished before it was interrupted";  // 60 epochs x 5 steps
  auto r = run_braid(train_args(d, run) + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("checkpoint was written by 2 rank(s), this run has 1"), std::string::npos) << r.err;
  auto s = nlohmann::json::parse(read_file(run + "/summary.json"));
  EXPECT_EQ(s["world_size"], 1);
  EXPECT_EQ(s["steps"], 600);  // 60 epochs x 10 batches of 4
  // steps 1..stopped were global batches of 8 (5 an epoch); the same position in the epoch is
  // step 2 x stopped in batches of 4 (10 an epoch), where the resumed run continues
  auto losses = train_losses(run);
  ASSERT_EQ(losses.size(), static_cast<size_t>(600 - stopped));
  EXPECT_EQ(losses[stopped - 1].first, stopped);
  EXPECT_EQ(losses[stopped].first, 2 * stopped + 1);
  EXPECT_EQ(losses.back().first, 600);
}

// Two ranks of different jobs on one store (a MASTER_PORT collision): the job token check refuses both before
// the process group forms, each naming the other rank, as one-line input errors (exit 2).
TEST(Distributed, RanksOfAnotherJobAreRefusedByTheJobToken) {
  if (!braid::train::distributed_available()) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  auto d = dataset("ddp_token");
  const std::string args = train_args(d, d.dir + "/run") + " --dist-timeout 20";
  const int port = free_port();
  pid_t r0 = spawn_braid(args, d.dir + "/r0.log", env_of(0, 2, port) + " BRAID_JOB_TOKEN=aaaa");
  pid_t r1 = spawn_braid(args, d.dir + "/r1.log", env_of(1, 2, port) + " BRAID_JOB_TOKEN=bbbb");
  const int c0 = wait_exit(r0, 60), c1 = wait_exit(r1, 60);
  if (c0 < 0) kill(r0, SIGKILL);
  if (c1 < 0) kill(r1, SIGKILL);
  const std::string l0 = read_file(d.dir + "/r0.log"), l1 = read_file(d.dir + "/r1.log");
  EXPECT_EQ(c0, 2) << l0;
  EXPECT_EQ(c1, 2) << l1;
  EXPECT_NE(l0.find("braid: error: distributed: rank 0 and rank 1 hold different job tokens"), std::string::npos) << l0;
  EXPECT_NE(l1.find("braid: error: distributed: rank 1 and rank 0 hold different job tokens"), std::string::npos) << l1;
  EXPECT_EQ(l0.find("aaaa"), std::string::npos) << "the token is never logged: " << l0;
  EXPECT_FALSE(fs::exists(d.dir + "/run/model.pt"));
}

// File names that arrive through the store are plain names, written into a fresh mkdtemp folder (0700).
TEST(Distributed, ReceivedFileNamesAreCheckedAndLandInAPrivateFolder) {
  using braid::train::is_plain_file_name;
  using braid::train::write_private_files;
  for (const char* bad : {"", ".", "..", "../recipe.resolved.yaml", "a/b", "/etc/passwd", "a\\b"})
    EXPECT_FALSE(is_plain_file_name(bad)) << bad;
  EXPECT_FALSE(is_plain_file_name(std::string("a\0b", 3)));
  for (const char* ok : {"recipe.resolved.yaml", "tokenizer.model", "..hidden", "a..b"})
    EXPECT_TRUE(is_plain_file_name(ok)) << ok;

  const std::string a = write_private_files({{"run.json", "{}"}, {"tokenizer.model", "xyz"}}, "rank1");
  const std::string b = write_private_files({{"run.json", "{}"}}, "rank1");
  EXPECT_NE(a, b) << "two folders of the same rank must differ (mkdtemp, not a predictable name)";
  EXPECT_EQ(read_file(a + "/tokenizer.model"), "xyz");
  EXPECT_EQ(fs::status(a).permissions() & fs::perms::all, fs::perms::owner_all) << "the folder is private (0700)";
  braid::remove_tree(a);
  braid::remove_tree(b);

  const std::string before_marker = fs::temp_directory_path() / "escaped.txt";
  fs::remove(before_marker);
  EXPECT_THROW(write_private_files({{"ok.txt", "1"}, {"../escaped.txt", "2"}}, "rank1"), braid::InputError);
  EXPECT_FALSE(fs::exists(before_marker)) << "a name with '..' wrote outside its folder";
}
