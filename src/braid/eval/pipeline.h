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

namespace braid::eval {

// classify / regress: supervised (labels / targets). align: self-supervised (the model's
// objective(); labels, when the data has them, only feed zero-shot and probe evaluations).
enum class Task { Classify, Regress, Align };

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
// run.json, into `run_dir`. Rejects unknown recipe keys before returning.
Pipeline create_pipeline(Config recipe, const data::Manifest& manifest, const std::string& run_dir);

// A finished (or checkpointed) run; weights are not loaded (see train/checkpoint.h).
Pipeline open_pipeline(const std::string& run_dir);

torch::Device parse_device(const std::string& s);

// Token ids of several strings through the run's text preprocessing, padded: a text ModalityBatch.
data::ModalityBatch text_batch(const data::Preprocessor& pre, const std::vector<std::string>& texts);
// Read text view `view` (e.g. "zh") from now on: loaders made afterwards use it.
void set_text_view(Pipeline& p, const std::string& view);

// Run the model over a loader and score it (classification or regression metrics; for align,
// retrieval between every pair of modalities, see evaluate_alignment).
// `drop`: modalities masked out of every batch (the missing-modality condition).
nlohmann::json evaluate(Pipeline& p, data::Loader& loader, const std::string& label = "eval",
                        const std::vector<std::string>& drop = {});

// Embeddings of every modality the model embeds over a loader's samples: per modality, the
// vectors [n, D] of the samples that have it, their manifest indices and group ids (samples
// without a group get a unique id).
struct Embeddings {
  std::map<std::string, torch::Tensor> vectors, index, groups;
};
Embeddings embed_all(Pipeline& p, data::Loader& loader, const std::string& label = "embed");

// Retrieval both ways for every pair of embedded modalities (query and gallery: the samples that
// have both), relevant = same group; "mean_r1" averages R@1 over the directions.
nlohmann::json evaluate_alignment(Pipeline& p, data::Loader& loader, const std::string& label = "eval");

// Task name of a metrics set's headline score and its value (higher is better).
double headline_score(const nlohmann::json& m, Task task);
const char* headline_name(Task task);

}  // namespace braid::eval
