// braid/eval/evaluate.h — a run's model over a loader: task metrics, embeddings, retrieval.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "braid/run/pipeline.h"

namespace braid::eval {

using run::Pipeline;
using run::Task;

// One pass over `loader` in order with a progress bar named `label` (and Ctrl-C checks): fn(batch as
// loaded, the same batch on the pipeline's device) for each batch.
void for_each_batch(Pipeline& p, data::Loader& loader, const std::string& label,
                    const std::function<void(const Batch& host, const Batch& dev)>& fn);

// Run the model over a loader and score it (classification or regression metrics; for align,
// retrieval between every pair of modalities, see evaluate_alignment; a model that scores itself,
// capabilities().scores, gives its own metrics, see evaluate_scores).
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

// The row-weighted means of the model's score_batch() over a loader (its "score" is the headline), and for a
// model with an image codebook the usage of the split's image codes: code_perplexity (exp of the entropy of
// the code histogram), codes_used (codes assigned at least once) of codes, and the codebook's live_codes.
nlohmann::json evaluate_scores(Pipeline& p, data::Loader& loader, const std::string& label = "eval");

// Task name of a metrics set's headline score and its value (higher is better).
double headline_score(const nlohmann::json& m, Task task);
const char* headline_name(Task task);

}  // namespace braid::eval
