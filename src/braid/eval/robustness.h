// braid/eval/robustness.h — missing-modality conditions and MultiBench's robustness scores.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "braid/core/batch.h"
#include "braid/eval/evaluate.h"

namespace braid::eval {

// Mark `drop` modalities absent in every row (presence false, zero data, zero lengths).
void drop_modalities(Batch& b, const std::vector<std::string>& drop);

// Score the run's model on prepared batches (eval mode, no grad), masking `drop` modalities.
nlohmann::json evaluate_batches(Pipeline& p, const std::vector<Batch>& batches,
                                const std::vector<std::string>& drop = {});

// Every non-empty subset of `modalities`, smallest first, in a stable order.
std::vector<std::vector<std::string>> nonempty_subsets(const std::vector<std::string>& modalities);

// Relative robustness: the mean accuracy over noise levels.
double relative_robustness(const std::vector<double>& acc_by_level);

// Effective robustness per method: relative robustness minus what the least-squares line
// through all methods' (clean accuracy, relative robustness) points predicts at its clean accuracy.
std::vector<double> effective_robustness(const std::vector<double>& clean, const std::vector<double>& relative);

}  // namespace braid::eval
