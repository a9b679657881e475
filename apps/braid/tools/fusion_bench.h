// apps/braid/tools/fusion_bench.h — `braid bench fusion`: every fusion method (and each unimodal
// baseline) trained with the same encoders and budget over several seeds, then scored for
// accuracy, robustness to noise and to missing modalities, and cost.
//
// Training runs are child processes (`braid train`), so each has its own peak memory figure
// and a crash of one is reported, not fatal; finished runs are reused, so an interrupted
// benchmark continues where it stopped. Noisy test sets are built once and shared by all runs.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace braid::tools {

struct FusionBenchOptions {
  std::string recipe;                  // base recipe (its model is a fusion_classifier)
  std::string data;                    // manifest
  std::string out;                     // results folder
  std::vector<std::string> methods;    // fusion names, early, late_*, uni:<modality>, mult, mfn, mctn;
                                       // "all" = every fusion_classifier method, "temporal" = mult, mfn, mctn
  std::map<std::string, std::string> model_recipes;  // temporal method -> recipe whose model: section it
                                                     // trains (default: model_recipe_path)
  int seeds = 3;                       // seeds 0..seeds-1
  int threads = 0;                     // per training run (0 = cores / jobs) and for evaluation (0 = all cores)
  int jobs = 1;                        // training runs at a time
  std::vector<std::string> sets;       // extra recipe overrides for every run
  std::vector<double> levels{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};  // test noise levels
  std::string split = "test";          // evaluation split
};

// Every method name "all" expands to for these modalities.
std::vector<std::string> all_fusion_methods(const std::vector<std::string>& modalities);

// The temporal models (docs/temporal.md) the benchmark can train in place of the base recipe's
// fusion_classifier: mult, mfn, mctn — what the group name "temporal" expands to.
std::vector<std::string> temporal_methods();

// --methods as given (names and the groups "all" and "temporal") -> the list of methods to run, in
// order, without duplicates. InputError naming the unknown method and listing the valid ones.
std::vector<std::string> expand_methods(const std::vector<std::string>& requested,
                                        const std::vector<std::string>& modalities);

// The recipe a temporal method takes its model: section from: `model_recipes[method]` when given,
// else the file next to the base recipe named <first word of its stem>_<method>.yaml
// (recipes/avmnist_fusion_bench.yaml -> recipes/avmnist_mult.yaml). InputError when that file is
// missing (naming it and --model-recipe) or its model.name is not `method`.
std::string model_recipe_path(const std::string& method, const std::string& base_recipe,
                              const std::map<std::string, std::string>& model_recipes);

// The recipe overrides (`--set` values) that turn the base recipe into `method`: uni:<m> reads
// only m; early concatenates the raw inputs (encoder `raw`) before the head; late_* and the
// feature-level fusions set model.fusion.name; a temporal method replaces the whole model section
// with the one of model_recipe_path (data, train budget and seeds stay the base recipe's).
std::vector<std::string> method_overrides(const std::string& method, const std::vector<std::string>& modalities,
                                          const std::string& base_recipe = "",
                                          const std::map<std::string, std::string>& model_recipes = {});

// Runs the benchmark; writes out/results.json, out/results.md and out/*.svg; returns results.json.
nlohmann::json run_fusion_bench(const FusionBenchOptions& o);

}  // namespace braid::tools
