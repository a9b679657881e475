// braid/eval/tasks.h — the evaluations of a finished run, by name (`braid eval --task NAME`).
//
// Each task reads the run's pipeline (weights loaded) and a split of a manifest and returns its
// metrics as JSON. `braid list tasks` prints the names and doc lines of task_registry().
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "braid/core/registry.h"
#include "braid/eval/evaluate.h"

namespace braid::eval {

struct TaskRequest {
  std::shared_ptr<const data::Manifest> manifest;
  std::string split = "test";
  std::vector<std::string> templates;  // zeroshot: prompt templates ("{}" = class name); empty = defaults
  std::string classes = "auto";        // zeroshot / probe label set: run | data | auto (data when the
                                       // split has labels the run never saw)
  int64_t rerank_k = 16;               // retrieval with a matching head: ITC top-k re-ranked by ITM
  int64_t cmg_epochs = 300;            // cmg: full-batch training steps of each A->B head
  int64_t max_tokens = 16;             // caption / qa: new tokens per answer at most
  int64_t examples = 20;               // caption / qa: generated examples kept in the output
  // draw (text -> image runs, eval/drawing.h): the judging runs and the sampling
  std::string classifier;              // draw: a classify run over images only (CAS)
  std::string clip;                    // draw: an align run embedding image and text (retrieval, KID, nearest name)
  std::string judge_weights = "model"; // draw: weights of the classifier and clip runs (run/run_dir.h)
  double guidance = 3.0;               // draw: classifier-free guidance weight (0 = unguided)
  int64_t per_prompt = 3;              // draw: images per row of the split
  double temperature = 1.0;            // draw: sampling temperature of the codes (0 = greedy)
  int64_t top_k = 0;                   // draw: sample among the k most likely codes (0 = all)
  uint64_t seed = 0;                   // draw: sampling and KID subsets
  std::string out_dir;                 // draw: write every image, grid.png and prompts.txt here ("" = none)
};

using TaskRegistry = Registry<nlohmann::json, Pipeline&, const TaskRequest&>;
const TaskRegistry& task_registry();

// The default task of a run: "retrieval" for align runs, else "metrics".
std::string default_task(const Pipeline& p);

}  // namespace braid::eval
