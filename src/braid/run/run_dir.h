// braid/run/run_dir.h — the one owner of a run directory's layout, and opening a finished run.
//
// `braid train --out DIR` writes, and everything else reads:
//   recipe.resolved.yaml  every effective setting (the recipe after overrides and defaults)
//   run.json              facts of the run: task, modalities, outputs, data facts, braid version
//   tokenizer.model       sentencepiece model (runs that read text), or, for runs of imported
//   tokenizer.json        checkpoints (`braid import`), the checkpoint's Hugging Face tokenizer
//   vocab.txt             or WordPiece vocabulary (+ tokenizer_config.json)
//   classes.json          class map (classification; align runs trained on labelled data)
//   metrics.jsonl         one JSON line per logged train step and per validation
//   checkpoints/last.pt   resumable checkpoint: the state after the last checkpointed step
//   checkpoints/best.pt   weights of the best validation score so far
//   model.pt              the final model (best validated weights, or the last without validation)
//   summary.json          steps, seconds, parameters, final validation metrics
//   rank<k>.log           data-parallel runs: the log of local rank k > 0
//   events.out.tfevents.<unix seconds>.<host>.<pid>.braid
//                         TensorBoard event files (train.tensorboard): one per training session
//                         (a resume adds one); the run directory is the TensorBoard log dir
//   .lock                 held (flock) by the process training the run; names it (pid, host, time)
// No other file of the tree spells these names.
#pragma once

#include <string>
#include <vector>

#include "braid/run/pipeline.h"

namespace braid::run {

struct RunDir {
  std::string root;

  explicit RunDir(std::string dir) : root(std::move(dir)) {}
  std::string recipe() const { return root + "/recipe.resolved.yaml"; }
  std::string facts() const { return root + "/run.json"; }
  // The run's tokenizer file: the first present of tokenizer.model (braid's sentencepiece),
  // tokenizer.json (a Hugging Face tokenizer) and vocab.txt (a WordPiece vocabulary); tokenizer.model
  // when none is (a fresh run trains one there).
  std::string tokenizer() const;
  // Where a copy of tokenizer file `src` goes in the run: tokenizer.json for *.json, vocab.txt for
  // *.txt, tokenizer.model otherwise (data::Tokenizer::load tells the kinds apart by name).
  std::string tokenizer_as(const std::string& src) const;
  // The Hugging Face tokenizer_config.json beside a vocab.txt (lower-casing, accents).
  std::string tokenizer_config() const { return root + "/tokenizer_config.json"; }
  std::string classes() const { return root + "/classes.json"; }
  std::string metrics() const { return root + "/metrics.jsonl"; }
  std::string checkpoints() const { return root + "/checkpoints"; }
  std::string last() const { return checkpoints() + "/last.pt"; }
  std::string best() const { return checkpoints() + "/best.pt"; }
  std::string model() const { return root + "/model.pt"; }
  std::string summary() const { return root + "/summary.json"; }
  std::string rank_log(int rank) const;
  std::string lock() const { return root + "/.lock"; }
  // TensorBoard: the log dir (the run directory itself), the name of a new event file for this
  // process (never an existing one; its seconds are past those of every event file already there,
  // so it sorts after them: TensorBoard reads a log dir's files in name order), and the event
  // files present, in name order.
  static constexpr const char* kTensorboardPrefix = "events.out.tfevents.";
  static constexpr const char* kTensorboardSuffix = ".braid";
  std::string tensorboard_dir() const { return root; }
  std::string new_tensorboard_file() const;
  std::vector<std::string> tensorboard_files() const;

  bool is_run() const;          // holds a resolved recipe
  bool has_checkpoint() const;  // holds checkpoints/last.pt (a run that can be resumed)
  bool finished() const;        // holds model.pt
  // The small files that define the run before training (recipe, facts, tokenizer, class map):
  // paths of those present. Data-parallel rank 0 ships them to the other ranks.
  std::vector<std::string> setup_files() const;
};

// An exclusive lock on a run directory for the life of a trainer (flock on RunDir::lock(); the
// kernel releases it when the process ends, kill -9 included). A second trainer of the same run,
// or a resume beside a live one, gets an InputError naming the holder. Creates the directory.
class RunLock {
 public:
  explicit RunLock(const RunDir& rd);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Which weights `open_run` loads: "model" (the final model), "best" (best validated), "last" (the
// model inside checkpoints/last.pt: the weights after the last checkpointed step), or a file path.
std::string weights_help();

// A finished (or checkpointed) run's pipeline with the chosen weights loaded, on `device` ("" = the
// run's own). A missing weights file is an InputError that names it and suggests what to try.
Pipeline open_run(const std::string& dir, const std::string& weights = "model", const std::string& device = "");

}  // namespace braid::run
