// Shared helpers of the dataset builders: manifests, seeded streams, source lookup, process runner.
#include "braid/data/build/common.h"

#include <fcntl.h>
#include <sndfile.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"

extern char** environ;

namespace braid::data::build {
namespace fs = std::filesystem;

// ---- manifests -------------------------------------------------------------------------------

std::string record_line(const Record& r) {
  nlohmann::ordered_json j;
  j["id"] = r.id;
  j["split"] = r.split;
  if (!r.label.empty()) j["label"] = r.label;
  if (!r.group.empty()) j["group"] = r.group;
  if (!r.text.is_null()) j["text"] = r.text;
  if (!r.image.empty()) j["image"] = r.image;
  if (!r.audio.empty()) j["audio"] = r.audio;
  return j.dump();
}

void write_manifest(const std::string& path, const std::vector<Record>& records,
                    const std::function<std::string(size_t)>& label_of) {
  std::string text;
  text.reserve(records.size() * 256);
  for (size_t i = 0; i < records.size(); ++i) {
    if (label_of) {
      Record r = records[i];
      r.label = label_of(i);
      text += record_line(r);
    } else {
      text += record_line(records[i]);
    }
    text += '\n';
  }
  braid::atomic_write_text(path, text);
}

void remove_stale_manifests(const std::string& out_dir, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    std::error_code ec;
    fs::remove(fs::path(out_dir) / n, ec);
    if (ec) throw std::runtime_error(fmt::format("{}: cannot remove the old manifest: {}", (fs::path(out_dir) / n).string(), ec.message()));
  }
}

void count_splits(const std::vector<Record>& records, BuildReport& report) {
  report.per_split = {{"train", 0}, {"val", 0}, {"test", 0}};
  for (const auto& r : records) report.per_split[r.split]++;
  report.samples = static_cast<int64_t>(records.size());
}

// ---- seeded streams ---------------------------------------------------------------------------

uint64_t hash_string(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

int64_t Rng::below(int64_t n) {
  if (n <= 0) throw std::logic_error("Rng::below: n must be positive");
  // Multiply-shift reduction; the bias for n << 2^64 is negligible and, above all, portable.
  return static_cast<int64_t>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(n)) >> 64);
}

int64_t Rng::range(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }

double Rng::normal() {
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

const char* split_name(int s) { return s == 0 ? "train" : s == 1 ? "val" : "test"; }

std::string split_of(uint64_t seed, const std::string& key) {
  double u = static_cast<double>(braid::mix_seed(seed, hash_string(key), 0x5b11) >> 11) * (1.0 / 9007199254740992.0);
  return u < 0.70 ? "train" : u < 0.85 ? "val" : "test";
}

// ---- sources ----------------------------------------------------------------------------------

static const char* kSetupHint = "`bash scripts/setup.sh` installs it";

std::string find_npm_root(const BuildOptions& opt, const std::string& probe) {
  std::vector<fs::path> candidates;
  if (!opt.npm_root.empty()) {
    candidates.push_back(opt.npm_root);
  } else {
    std::error_code ec;
    fs::path cwd = fs::current_path(ec);
    for (fs::path p = cwd; !ec && !p.empty(); p = p.parent_path()) {
      candidates.push_back(p);
      if (p == p.parent_path()) break;
    }
    // The checkout this file was compiled from: <root>/src/braid/data/build/common.cpp.
    fs::path self(__FILE__);
    if (self.is_absolute()) candidates.push_back(self.parent_path().parent_path().parent_path().parent_path().parent_path());
  }
  std::string tried;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::exists(c / "node_modules" / probe, ec)) return c.string();
    tried += (tried.empty() ? "" : ", ") + (c / "node_modules" / probe).string();
  }
  braid::input_error("npm package file not found: expected {} (looked for {}); {}", (fs::path("node_modules") / probe).string(),
                     tried, kSetupHint);
}

void require_source(const std::string& path, const std::string& what) {
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::is_regular_file(path, ec), "{}: expected {} (missing); {}", what, path, kSetupHint);
}

std::string read_source(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open ({}); {}", path, std::strerror(errno), kSetupHint);
  std::stringstream ss;
  ss << f.rdbuf();
  BRAID_INPUT_CHECK(!f.bad(), "{}: read failed", path);
  return ss.str();
}

nlohmann::json parse_json_file(const std::string& path) {
  std::string text = read_source(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    braid::input_error("{}: not valid JSON: {}", path, e.what());
  }
}

// ---- workers ----------------------------------------------------------------------------------

std::vector<float> trim_normalize(const std::vector<float>& x, int64_t rate, const std::string& path) {
  float peak = 0;
  for (float v : x) peak = std::max(peak, std::fabs(v));
  if (peak <= 1e-4f) throw std::runtime_error(fmt::format("{}: espeak-ng wrote silence", path));
  const float thr = 0.02f * peak;
  size_t a = 0, b = x.size();
  while (a < b && std::fabs(x[a]) < thr) ++a;
  while (b > a && std::fabs(x[b - 1]) < thr) --b;
  const size_t margin = static_cast<size_t>(rate / 100);
  a = a > margin ? a - margin : 0;
  b = std::min(x.size(), b + margin);
  std::vector<float> y(x.begin() + static_cast<std::ptrdiff_t>(a), x.begin() + static_cast<std::ptrdiff_t>(b));
  for (auto& v : y) v /= peak;
  return y;
}

std::vector<float> noise_wave(int64_t n, bool pink, Rng& rng, double* mean_power) {
  std::vector<float> noise(static_cast<size_t>(std::max<int64_t>(n, 0)));
  double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, power = 0;
  for (auto& v : noise) {
    double w = rng.normal();
    if (pink) {  // Paul Kellet's refined pink-noise filter (-3 dB/octave above ~10 Hz)
      b0 = 0.99886 * b0 + w * 0.0555179;
      b1 = 0.99332 * b1 + w * 0.0750759;
      b2 = 0.96900 * b2 + w * 0.1538520;
      b3 = 0.86650 * b3 + w * 0.3104856;
      b4 = 0.55000 * b4 + w * 0.5329522;
      b5 = -0.7616 * b5 - w * 0.0168980;
      double p = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
      b6 = w * 0.115926;
      w = p;
    }
    v = static_cast<float>(w);
    power += w * w;
  }
  if (mean_power) *mean_power = noise.empty() ? 0.0 : power / static_cast<double>(noise.size());
  return noise;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn, const std::string& label) {
  if (n <= 0) return;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::exception_ptr first;
  std::mutex mu;
  auto work = [&] {
    while (!stop.load()) {
      if (braid::interrupted()) {
        stop = true;
        break;
      }
      int64_t i = next.fetch_add(1);
      if (i >= n) break;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
        stop = true;
      }
      done.fetch_add(1);
    }
  };
  braid::Progress progress(label, n, "jobs");
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  // The calling thread only draws progress; the workers do the work.
  while (done.load() < n && !stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    progress.update(done.load());
  }
  for (auto& t : pool) t.join();
  braid::check_interrupt();
  if (first) std::rethrow_exception(first);
  progress.update(done.load());
  progress.finish();
}

static std::string quote_command(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+./=:,") ==
                                   std::string::npos;
    if (plain) {
      s += a;
    } else {
      s += '\'';
      for (char c : a) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
      s += '\'';
    }
  }
  return s;
}

// Spawn argv, capture its stdout+stderr (first 4 KiB), wait. Throws naming the command on failure.
static void run_one(const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(fmt::format("pipe failed: {}", std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    if (rc == ENOENT)
      braid::input_error("cannot run `{}`: {} is not installed (not found on PATH); {}", quote_command(args), args[0], kSetupHint);
    throw std::runtime_error(fmt::format("cannot run `{}`: {}", quote_command(args), std::strerror(rc)));
  }
  std::string captured;
  char buf[1024];
  for (;;) {
    ssize_t k = ::read(fds[0], buf, sizeof buf);
    if (k > 0) {
      if (captured.size() < 4096) captured.append(buf, static_cast<size_t>(k));
    } else if (k == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(fmt::format("waitpid for `{}` failed: {}", quote_command(args), std::strerror(errno)));
  }
  while (!captured.empty() && (captured.back() == '\n' || captured.back() == ' ')) captured.pop_back();
  for (auto& c : captured)
    if (c == '\n') c = ' ';
  if (WIFSIGNALED(status))
    throw std::runtime_error(fmt::format("`{}` was killed by signal {}{}{}", quote_command(args), WTERMSIG(status),
                                         captured.empty() ? "" : ": ", captured));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("`{}` failed with exit status {}{}{}", quote_command(args), WEXITSTATUS(status),
                                         captured.empty() ? "" : ": ", captured));
}

void run_commands(const std::vector<std::vector<std::string>>& commands, int threads, const std::string& label) {
  parallel_for(static_cast<int64_t>(commands.size()), threads, [&](int64_t i) { run_one(commands[static_cast<size_t>(i)]); },
               label);
}

std::vector<float> read_wav_mono(const std::string& path, int64_t* sample_rate) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) throw std::runtime_error(fmt::format("{}: cannot read the WAV espeak-ng wrote: {}", path, sf_strerror(nullptr)));
  if (info.channels < 1 || info.frames < 0 || info.frames > (int64_t{1} << 28)) {
    sf_close(f);
    throw std::runtime_error(fmt::format("{}: unexpected WAV shape ({} channels, {} frames)", path, info.channels, info.frames));
  }
  std::vector<float> inter(static_cast<size_t>(info.frames) * static_cast<size_t>(info.channels));
  sf_count_t got = sf_readf_float(f, inter.data(), info.frames);
  sf_close(f);
  if (got != info.frames) throw std::runtime_error(fmt::format("{}: short read ({} of {} frames)", path, got, info.frames));
  std::vector<float> mono(static_cast<size_t>(info.frames));
  for (size_t i = 0; i < mono.size(); ++i) {
    float s = 0;
    for (int c = 0; c < info.channels; ++c) s += inter[i * static_cast<size_t>(info.channels) + static_cast<size_t>(c)];
    mono[i] = s / static_cast<float>(info.channels);
  }
  if (sample_rate) *sample_rate = info.samplerate;
  return mono;
}

// ---- speech -----------------------------------------------------------------------------------

std::vector<std::string> english_voices() {
  // Accents present in Debian's espeak-ng-data 1.51 (`espeak-ng --voices=en`, MBROLA voices excluded
  // because their data is not installed) times voice variants (!v/ f1..f5, m1..m7, klatt).
  static const char* accents[] = {"en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"};
  static const char* variants[] = {"", "+f1", "+f2", "+f3", "+f4", "+f5", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+klatt"};
  std::vector<std::string> v;
  for (const char* a : accents)
    for (const char* var : variants) v.push_back(std::string(a) + var);
  return v;
}


}  // namespace braid::data::build
