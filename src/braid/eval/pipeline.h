// braid/eval/pipeline.h — everything a run needs to turn manifest samples into predictions:
// the resolved recipe, tokenizer, class map, preprocessor and model, built the same way
// for training (`create_pipeline`) and for later use of a finished run (`open_pipeline`).
//
// A run directory holds: recipe.resolved.yaml (every effective setting), run.json (task,
// modalities, data facts), tokenizer.model (when text is used), classes.json (classification),
// model.pt (final weights), metrics.jsonl and checkpoints/.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/data/loader.h"
#include "braid/data/manifest.h"
#include "braid/data/preprocess.h"
#include "braid/data/tokenizer.h"
#include "braid/models/model.h"

namespace braid::eval {

enum class Task { Classify, Regress };

struct Pipeline {
  Config recipe;
  Task task = Task::Classify;
  std::vector<std::string> modalities;
  std::shared_ptr<data::Tokenizer> tokenizer;   // null without text
  std::shared_ptr<data::ClassMap> classes;      // null for regression
  int64_t outputs = 0;                          // classes or target dims
  nlohmann::json facts;                         // run.json
  std::shared_ptr<data::Preprocessor> pre;
  models::ModelPtr model;
  torch::Device device{torch::kCPU};

  data::Targets targets() const { return task == Task::Classify ? data::Targets::Labels : data::Targets::Regression; }
  // Loader options from the recipe's data section; `train` shuffles with the run's seed.
  data::LoaderOptions loader_options(bool train) const;
  std::unique_ptr<data::Loader> loader(std::shared_ptr<const data::Manifest> m, const std::string& split,
                                       bool train) const;
};

// Fresh run: fits tokenizer and class map on `manifest`'s train split and writes them, with
// run.json, into `run_dir`. Rejects unknown recipe keys before returning.
Pipeline create_pipeline(Config recipe, const data::Manifest& manifest, const std::string& run_dir);

// A finished (or checkpointed) run; weights are not loaded (see train/checkpoint.h).
Pipeline open_pipeline(const std::string& run_dir);

torch::Device parse_device(const std::string& s);

// Run the model over a loader and score it (classification or regression metrics).
// `drop`: modalities masked out of every batch (the missing-modality condition).
nlohmann::json evaluate(Pipeline& p, data::Loader& loader, const std::string& label = "eval",
                        const std::vector<std::string>& drop = {});

}  // namespace braid::eval
