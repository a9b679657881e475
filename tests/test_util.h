// Helpers shared by the tests: temp dirs, a small synthetic multimodal dataset, running the CLI.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <map>

#include <string>
#include <vector>

namespace braid::test {

// A fresh empty directory under the system temp dir (removed by the caller if wanted).
std::string temp_dir(const std::string& tag);

// temp_dir(tag) as an object: removed (with everything in it) when it goes out of scope.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "tmp");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // path/name; writes `text` there first when it is not empty
  std::string file(const std::string& name, const std::string& text = "") const;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

// Writes `n` samples of `classes` classes: PNG images (class-coloured squares + noise), WAV
// tones (class-dependent pitch), text (class words + filler), inline series. Splits: every 4th
// sample val, every 8th (shifted) test, the rest train. Returns the manifest path.
struct ToyOptions {
  int n = 64;
  int classes = 3;
  bool image = true, audio = true, text = true, series = false;
  int seed = 0;
};
std::string make_toy_dataset(const std::string& dir, const ToyOptions& opt = {});

// A toy dataset with a recipe beside it, for tests that train through the CLI.
struct Dataset {
  std::string dir, manifest, recipe;
};

// Result of running the braid executable.
struct RunResult {
  int code = -1;        // exit code (128 + signal when killed)
  std::string out, err;
};
// Runs BRAID_EXE with `args` (already shell-quoted where needed) and captures stdout/stderr.
RunResult run_braid(const std::string& args);

// Largest |a - b| in double; a and b must have the same shape (a failed expectation otherwise).
double max_diff(const torch::Tensor& a, const torch::Tensor& b);

// Shell-quote one argument.
std::string q(const std::string& s);

// The last line of s (trailing newlines dropped): where the CLI writes its one-line error.
std::string last_line(std::string s);

// Paths of committed fixtures: tests/fixtures/golden/<name> and tests/fixtures/broken/<name>.
std::string golden(const std::string& name);
std::string broken(const std::string& name);

// Shapes equal and max |got - want| <= atol (NaN counts as infinite); prints the worst
// difference, and the failure message names the worst element.
::testing::AssertionResult AllClose(const torch::Tensor& got, const torch::Tensor& want, double atol,
                                    const std::string& what);

// `f` throws braid::InputError whose message is one line, names `file` and contains `also`.
void ExpectInputError(const std::function<void()>& f, const std::string& file, const std::string& also = "");

// JSON lines of a file.
std::vector<nlohmann::json> read_jsonl(const std::string& path);

// "train RECIPE --data MANIFEST --out RUN" for `d` (arguments quoted).
std::string train_args(const Dataset& d, const std::string& run);
// (step, loss) of every train line of RUN/metrics.jsonl (validation lines skipped).
std::vector<std::pair<int64_t, double>> train_losses(const std::string& run);

// The last non-empty line of a command's stdout, parsed as JSON (what `--json` prints last).
nlohmann::json last_json_line(const std::string& out);

// Classification predictions of a finished run recounted here, not through eval's metrics code: the
// run's weights (`weights` as `braid eval --weights`) over `split` of `manifest`, argmax of the
// model's outputs against the labels. correct / n is the accuracy `braid eval` must print.
struct Recount {
  int64_t correct = 0, n = 0;
  std::map<int64_t, int64_t> label_counts;  // class id -> samples of the split
  double accuracy() const { return n ? static_cast<double>(correct) / n : 0.0; }
  double majority_share() const;            // the largest class's share of the split
};
Recount recount_accuracy(const std::string& run, const std::string& manifest, const std::string& split,
                         const std::string& weights = "model");

// `braid eval RUN --split val --threads 1 --json` scores the run's final model exactly as training's
// last validation of the best weights did (summary.json "val"), and that accuracy is the best one
// logged in metrics.jsonl.
void ExpectEvalMatchesTrainingValidation(const std::string& run, const std::string& manifest);

// Starts braid in the background with `args` (stdin /dev/null, stdout and stderr to `log`), with
// the environment assignments `env` ("RANK=1 WORLD_SIZE=2", may be empty); returns its pid.
pid_t spawn_braid(const std::string& args, const std::string& log, const std::string& env = "");

// The highest "step" of a metrics.jsonl (unparsable, e.g. torn, lines are skipped; 0 when none).
int64_t last_logged_step(const std::string& metrics);

// Polls until the run directory `run` has logged `step` steps (and, with `checkpoint`, written
// checkpoints/last.pt). False when `pid` exits first or `seconds` pass.
bool wait_for_step(pid_t pid, const std::string& run, int64_t step, double seconds, bool checkpoint);

}  // namespace braid::test
