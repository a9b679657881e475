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
};

using TaskRegistry = Registry<nlohmann::json, Pipeline&, const TaskRequest&>;
const TaskRegistry& task_registry();

// The default task of a run: "retrieval" for align runs, else "metrics".
std::string default_task(const Pipeline& p);

}  // namespace braid::eval
