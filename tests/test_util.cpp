#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include <iostream>

#include "braid/core/error.h"
#include "braid/data/audio.h"
#include "braid/data/image.h"
#include "braid/core/fs.h"
#include "braid/run/run_dir.h"

namespace braid::test {

namespace fs = std::filesystem;

// Every temp_dir of this process, removed when it exits (temp_dir returns a bare path that nothing
// owns: before this, a few test runs left ~1000 folders in /tmp).
static std::vector<std::string>& made_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

std::string temp_dir(const std::string& tag) {
  static int counter = 0;
  static bool registered = false;
  if (!registered) {
    registered = true;
    made_dirs();  // constructed before the handler is registered, so destroyed after it has run
    std::atexit([] {
      for (const auto& d : made_dirs()) {
        try {
          braid::remove_tree(d);
        } catch (...) {
        }
      }
    });
  }
  auto p = fs::temp_directory_path() / ("braid_test_" + tag + "_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter++));
  braid::remove_tree(p);
  fs::create_directories(p);
  made_dirs().push_back(p.string());
  return p.string();
}

TempDir::TempDir(const std::string& tag) : path(temp_dir(tag)) {}

TempDir::~TempDir() {
  try {
    braid::remove_tree(path.string());
  } catch (...) {
  }
}

std::string TempDir::file(const std::string& name, const std::string& text) const {
  auto p = (path / name).string();
  if (!text.empty()) write_file(p, text);
  return p;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string make_toy_dataset(const std::string& dir, const ToyOptions& o) {
  static const char* words[] = {"red apple fruit", "blue ocean water", "green forest tree", "yellow sun light",
                                "black night sky"};
  std::mt19937 rng(o.seed);
  std::normal_distribution<float> noise(0.f, 1.f);
  fs::create_directories(dir + "/img");
  fs::create_directories(dir + "/wav");
  std::ofstream man(dir + "/manifest.jsonl");
  for (int i = 0; i < o.n; ++i) {
    int c = i % o.classes;
    std::string id = "s" + std::to_string(i);
    std::string split = i % 4 == 1 ? "val" : (i % 8 == 3 ? "test" : "train");
    nlohmann::json j = {{"id", id}, {"split", split}, {"label", "class" + std::to_string(c)}};
    if (o.image) {
      const int S = 16;
      std::vector<uint8_t> px(S * S * 3);
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          for (int ch = 0; ch < 3; ++ch) {
            float base = (ch == c % 3) ? 200.f : 40.f;
            if ((x / 4 + y / 4 + c) % 2) base *= 0.6f;
            px[(y * S + x) * 3 + ch] = static_cast<uint8_t>(std::clamp(base + 20.f * noise(rng), 0.f, 255.f));
          }
      braid::data::write_png(dir + "/img/" + id + ".png", S, S, 3, px.data());
      j["image"] = "img/" + id + ".png";
    }
    if (o.audio) {
      const int rate = 8000, n = 2400 + 400 * (i % 3);
      std::vector<float> w(n);
      float f = 300.f + 250.f * c;
      for (int t = 0; t < n; ++t) w[t] = 0.5f * std::sin(2 * M_PI * f * t / rate) + 0.05f * noise(rng);
      braid::data::write_wav(dir + "/wav/" + id + ".wav", w, rate);
      j["audio"] = "wav/" + id + ".wav";
    }
    if (o.text) j["text"] = {{"en", std::string(words[c % 5]) + (i % 2 ? " and more" : "")}, {"xx", "item " + id}};
    if (o.series) {
      nlohmann::json rows = nlohmann::json::array();
      for (int t = 0; t < 5 + i % 4; ++t) rows.push_back({std::sin(0.5 * t * (c + 1)), 0.1 * t + c});
      j["series"] = rows;
    }
    man << j.dump() << "\n";
  }
  return dir + "/manifest.jsonl";
}

std::string q(const std::string& s) {
  std::string r = "'";
  for (char ch : s) r += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return r + "'";
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

std::string last_line(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const auto nl = s.find_last_of('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

RunResult run_braid(const std::string& args) {
  static int counter = 0;
  std::string base = fs::temp_directory_path() / ("braid_run_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::string cmd = std::string(BRAID_EXE) + " " + args + " >" + base + ".out 2>" + base + ".err </dev/null";
  int st = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return r;
}

std::string golden(const std::string& name) { return std::string(BRAID_FIXTURES) + "/golden/" + name; }
std::string broken(const std::string& name) { return std::string(BRAID_FIXTURES) + "/broken/" + name; }

// Shapes equal and max |got - want| <= atol; the message names the worst element.
::testing::AssertionResult AllClose(const torch::Tensor& got, const torch::Tensor& want, double atol,
                                    const std::string& what) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << got.sizes() << ", expected " << want.sizes();
  auto g = got.to(torch::kFloat64).flatten(), w = want.to(torch::kFloat64).flatten();
  if (g.numel() == 0) return ::testing::AssertionSuccess();
  auto d = (g - w).abs();
  d = torch::where(torch::isnan(d), torch::full_like(d, INFINITY), d);
  const int64_t i = d.argmax().item<int64_t>();
  const double worst = d[i].item<double>();
  std::cout << "[   diff   ] " << what << ": max |diff| " << worst << " (tolerance " << atol << ")\n";
  if (worst <= atol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max |diff| " << worst << " > " << atol << " at flat index " << i
                                       << " (got " << g[i].item<double>() << ", expected " << w[i].item<double>()
                                       << ")";
}

void ExpectInputError(const std::function<void()>& f, const std::string& file, const std::string& also) {
  try {
    f();
    ADD_FAILURE() << "expected braid::InputError for " << file;
  } catch (const braid::InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file), std::string::npos) << "message does not name " << file << ": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "message is not one line: " << m;
    if (!also.empty()) EXPECT_NE(m.find(also), std::string::npos) << "message lacks '" << also << "': " << m;
  }
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> v;
  std::ifstream f(path);
  for (std::string l; std::getline(f, l);)
    if (!l.empty()) v.push_back(nlohmann::json::parse(l));
  return v;
}

std::string train_args(const Dataset& d, const std::string& run) {
  return "train " + q(d.recipe) + " --data " + q(d.manifest) + " --out " + q(run);
}

std::vector<std::pair<int64_t, double>> train_losses(const std::string& run) {
  std::vector<std::pair<int64_t, double>> v;
  for (const auto& j : read_jsonl(run + "/metrics.jsonl"))
    if (j.contains("loss") && !j.contains("split")) v.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
  return v;
}

nlohmann::json last_json_line(const std::string& out) {
  std::string last, line;
  std::istringstream ss(out);
  while (std::getline(ss, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last);
}

double Recount::majority_share() const {
  int64_t best = 0;
  for (const auto& [c, k] : label_counts) best = std::max(best, k);
  return n ? static_cast<double>(best) / n : 0.0;
}

Recount recount_accuracy(const std::string& run, const std::string& manifest, const std::string& split,
                         const std::string& weights) {
  auto p = braid::run::open_run(run, weights);
  auto m = std::make_shared<braid::data::Manifest>(braid::data::Manifest::load(manifest));
  auto loader = p.loader(m, split, false);
  torch::NoGradGuard ng;
  p.model->eval();
  Recount r;
  loader->start_epoch(0);
  while (auto b = loader->next()) {
    auto pred = p.model->forward(b->to(p.device)).argmax(1).cpu();
    auto pa = pred.accessor<int64_t, 1>();
    auto la = b->labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < b->size(); ++i) {
      ++r.n;
      ++r.label_counts[la[i]];
      r.correct += pa[i] == la[i];
    }
  }
  return r;
}

void ExpectEvalMatchesTrainingValidation(const std::string& run, const std::string& manifest) {
  auto e = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split val --threads 1 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto j = last_json_line(e.out);
  auto val = nlohmann::json::parse(read_file(braid::run::RunDir(run).summary()))["val"];
  ASSERT_TRUE(val.contains("accuracy")) << val.dump();
  for (const char* k : {"n", "accuracy", "macro_f1", "per_class"}) EXPECT_EQ(j[k], val[k]) << k << ": " << e.out;
  double best = -1;
  for (const auto& line : read_jsonl(braid::run::RunDir(run).metrics()))
    if (line.value("split", "") == "val") best = std::max(best, line["accuracy"].get<double>());
  EXPECT_EQ(j["accuracy"].get<double>(), best) << "eval's val accuracy is not the best one training logged";
}

pid_t spawn_braid(const std::string& args, const std::string& log, const std::string& env) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = "exec " + (env.empty() ? "" : "env " + env + " ") + std::string(BRAID_EXE) + " " + args + " >" +
                      log + " 2>&1 </dev/null";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int64_t last_logged_step(const std::string& metrics) {
  int64_t s = 0;
  std::ifstream f(metrics);
  for (std::string l; std::getline(f, l);) {
    try {
      s = std::max<int64_t>(s, nlohmann::json::parse(l).value("step", int64_t{0}));
    } catch (...) {
    }
  }
  return s;
}

bool wait_for_step(pid_t pid, const std::string& run, int64_t step, double seconds, bool checkpoint) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if ((!checkpoint || std::filesystem::exists(run + "/checkpoints/last.pt")) &&
        last_logged_step(run + "/metrics.jsonl") >= step)
      return true;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return false;  // finished (or died) too early
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace braid::test
