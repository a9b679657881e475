// braid/objectives/multitask.h — weighting several objective terms into one loss.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace braid::objectives {

// Σ_name weights[name]·terms[name] (scalar terms). A term without a weight has weight 1; a weight
// whose name is not among the terms is an InputError naming it (a recipe typo), as is an empty
// `terms` or a non-scalar term. When `logged` is given, logged[name] = the term's unweighted value.
torch::Tensor weighted_sum(const std::map<std::string, torch::Tensor>& terms, const std::map<std::string, double>& weights,
                           std::map<std::string, double>* logged = nullptr);

}  // namespace braid::objectives
