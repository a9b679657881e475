// braid/run/pipeline.h — everything a run needs to turn manifest samples into predictions:
// the resolved recipe, tokenizer, class map, preprocessor and model, built the same way
// for training (`create_pipeline`) and for later use of a finished run (`open_pipeline`).
// The files of a run directory are named in run/run_dir.h; weights in run/weights.h.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/core/precision.h"
#include "braid/data/loader.h"
#include "braid/data/manifest.h"
#include "braid/data/preprocess.h"
#include "braid/data/tokenizer.h"
#include "braid/models/model.h"

namespace braid::run {

// classify / regress: supervised (labels / targets). align: self-supervised (the model's
// objective(); labels, when the data has them, only feed zero-shot and probe evaluations).
// The enum is the models' contract (models/model.h); the recipe key `task` is parsed here.
using models::Task;

struct Pipeline {
  Config recipe;
  Task task = Task::Classify;
  std::vector<std::string> modalities;
  std::shared_ptr<data::Tokenizer> tokenizer;   // null without text
  std::shared_ptr<data::ClassMap> classes;      // null for regression
  int64_t outputs = 0;                          // classes or target dims
  nlohmann::json facts;                         // run facts (RunDir::facts)
  std::shared_ptr<data::Preprocessor> pre;
  models::ModelPtr model;
  torch::Device device{torch::kCPU};
  Precision precision = Precision::FP32;      // recipe `precision`: forward passes under bf16 autocast

  data::Targets targets() const {
    if (task == Task::Regress) return data::Targets::Regression;
    return classes ? data::Targets::Labels : data::Targets::None;
  }
  // Loader options from the recipe's data section; `train` shuffles with the run's seed.
  data::LoaderOptions loader_options(bool train) const;
  std::unique_ptr<data::Loader> loader(std::shared_ptr<const data::Manifest> m, const std::string& split,
                                       bool train) const;
};

// Fresh run: fits tokenizer and class map on `manifest`'s train split and writes them, with
// the run facts, into `run_dir` (file names: run/run_dir.h). Rejects unknown recipe keys before returning.
Pipeline create_pipeline(Config recipe, const data::Manifest& manifest, const std::string& run_dir);

// A finished (or checkpointed) run; weights are not loaded (run/run_dir.h open_run does).
Pipeline open_pipeline(const std::string& run_dir);

torch::Device parse_device(const std::string& s);

// Token ids of several strings through the run's text preprocessing, padded: a text ModalityBatch.
ModalityBatch text_batch(const data::Preprocessor& pre, const std::vector<std::string>& texts);
// Read text view `view` (e.g. "zh") from now on: loaders made afterwards use it.
void set_text_view(Pipeline& p, const std::string& view);

}  // namespace braid::run
