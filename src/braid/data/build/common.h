// braid/data/build/common.h — private helpers shared by the dataset builders (not installed API).
//
// Manifest records, deterministic random streams, split assignment, source-file lookup with
// setup hints, and a parallel runner for external commands (espeak-ng).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "braid/data/build/build.h"

namespace braid::data::build {

// One manifest line. Empty strings / null json mean "absent" and are not written.
struct Record {
  std::string id;
  std::string split;        // train | val | test
  std::string label;        // optional
  std::string group;        // optional: samples sharing it are views of one item
  nlohmann::ordered_json text;  // optional: string or object of named views
  std::string image;        // optional: path relative to the manifest
  std::string audio;        // optional: path relative to the manifest
};

// The JSONL line (no trailing newline) with keys in the order id, split, label, group, text, image, audio.
std::string record_line(const Record& r);

// Write all records as JSONL atomically (temp file + rename). `label_of`, when given, replaces
// each record's label (used for the same samples under another label set).
void write_manifest(const std::string& path, const std::vector<Record>& records,
                    const std::function<std::string(size_t)>& label_of = nullptr);

// Remove manifests left by an earlier build in `out_dir` before any file is rewritten, so an
// interrupted rebuild cannot leave an old manifest pointing at half-replaced files.
void remove_stale_manifests(const std::string& out_dir, const std::vector<std::string>& names);

// 64-bit FNV-1a of a string: a stable key for hashing ids into seeds.
uint64_t hash_string(const std::string& s);

// A small deterministic generator (splitmix64 stream) with portable uniform draws: the same
// seed gives the same numbers on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();                          // [0, 1)
  double uniform(double lo, double hi);      // [lo, hi)
  int64_t below(int64_t n);                  // [0, n), n > 0
  int64_t range(int64_t lo, int64_t hi);     // [lo, hi] inclusive
  double normal();                           // standard normal (Box-Muller)
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(below(static_cast<int64_t>(i)))]);
  }

 private:
  uint64_t state_;
};

// "train" / "val" / "test" from a seeded hash of `key`: P = 0.70 / 0.15 / 0.15.
std::string split_of(uint64_t seed, const std::string& key);

// "train", "val", "test" for split index 0, 1, 2 (the builders that draw splits by index).
const char* split_name(int s);

// The folder holding node_modules/: opt.npm_root if set, else the working directory or one of its
// parents, else the braid checkout this file was compiled from. InputError naming `probe`
// (a path below node_modules/) and the setup script when none has it.
std::string find_npm_root(const BuildOptions& opt, const std::string& probe);

// InputError "<what>: expected <path> ... `bash scripts/setup.sh` installs it" when `path` is missing.
void require_source(const std::string& path, const std::string& what);

// Read a whole (possibly large) source file; InputError naming it on failure.
std::string read_source(const std::string& path);

// Parse JSON from a source file; InputError naming the file and the parser's message.
nlohmann::json parse_json_file(const std::string& path);

// Run commands (argv vectors, argv[0] searched on PATH) with at most `threads` running at once,
// showing a Progress line labelled `label`. Stdout/stderr of the children go to /dev/null and to a
// per-job capture that is quoted when a job fails. A command that cannot start, is killed by a
// signal or exits non-zero is an error naming the full command; the remaining jobs are reaped
// first. Ctrl-C (braid::interrupted) stops starting new jobs and throws Interrupted.
void run_commands(const std::vector<std::vector<std::string>>& commands, int threads, const std::string& label);

// Run fn(i) for i in [0, n) on `threads` worker threads (in-process work such as PNG encoding).
// The first exception is rethrown after all workers stop; Ctrl-C throws Interrupted.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn, const std::string& label);

// Mono 16-bit WAV reader via libsndfile for files this builder just made (espeak-ng output).
std::vector<float> read_wav_mono(const std::string& path, int64_t* sample_rate);

// Cut leading and trailing silence (below 2 % of the peak) keeping 10 ms margins and scale the peak to 1;
// `path` names the file in the error for an utterance that is silent.
std::vector<float> trim_normalize(const std::vector<float>& x, int64_t rate, const std::string& path);

// n samples of white (N(0, 1)) or pink noise (Paul Kellet's refined filter, -3 dB/octave above ~10 Hz, on
// N(0, 1) input) from `rng`: one normal draw per sample. `mean_power`, when given, gets the mean square of
// the samples before their rounding to float.
std::vector<float> noise_wave(int64_t n, bool pink, Rng& rng, double* mean_power = nullptr);

// Seconds since `start` (steady clock).
double seconds_since(std::chrono::steady_clock::time_point start);

// Individual builders (one file each).
BuildReport build_emoji(const BuildOptions& opt);
BuildReport build_avmnist(const BuildOptions& opt);
BuildReport build_fashion_mnist(const BuildOptions& opt);
BuildReport build_prosody(const BuildOptions& opt);
BuildReport build_ave(const BuildOptions& opt);

// English voices of espeak-ng (accent + variant) used by the speech builders, in a fixed order.
std::vector<std::string> english_voices();

// Count per split into report.per_split and the total into report.samples.
void count_splits(const std::vector<Record>& records, BuildReport& report);

}  // namespace braid::data::build
