// braid/eval/zeroshot.h — zero-shot classification and linear probes on a shared embedding space.
//
// Zero-shot: every class name goes through prompt templates ("an emoji of {}", ...); each prompt's
// text embedding is L2-normalized, the prompts of a class are averaged and the mean re-normalized;
// logits = 100 · cos(x, class). Top-1 / top-5 against chance 1/K, per embedded non-text modality.
// Linear probe: multinomial logistic regression (L2, full-batch L-BFGS) on the frozen embeddings of
// the train split, scored on the evaluated split.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

#include "braid/eval/evaluate.h"

namespace braid::eval {

// The default prompt templates ("{}" is replaced by the class name).
const std::vector<std::string>& default_templates();

// Prompt embeddings [K, T, D] (any scale) -> class embeddings [K, D]: normalize, mean over T, normalize.
torch::Tensor average_prompt_embeddings(const torch::Tensor& prompts);
// 100 · x̂ · cᵀ: x [N, D] (normalized here), classes [K, D] unit rows -> [N, K].
torch::Tensor zeroshot_logits(const torch::Tensor& x, const torch::Tensor& classes);

// Class embeddings [K, D] of `names` through the run's text tower and `templates`.
torch::Tensor class_embeddings(Pipeline& p, const std::vector<std::string>& names,
                               const std::vector<std::string>& templates);

// Zero-shot classification of the loader's samples with the run's class map.
nlohmann::json evaluate_zeroshot(Pipeline& p, data::Loader& loader,
                                 const std::vector<std::string>& templates = default_templates());

// Logistic-regression probe trained on `train` embeddings, scored on `test`, per embedded modality.
nlohmann::json evaluate_probe(Pipeline& p, data::Loader& train, data::Loader& test, double l2 = 1e-3);

// Top-k accuracy of logits [N, K] against labels [N].
double topk_accuracy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

}  // namespace braid::eval
