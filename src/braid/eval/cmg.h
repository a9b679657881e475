// braid/eval/cmg.h — cross-modal generalization (CMG, Xia et al. 2023): with the pretrained model frozen,
// for every ordered modality pair (A, B) a classifier head is trained on modality A's embeddings of the
// train split (label = the sample's class) and evaluated unchanged on modality B's test split. Chance
// levels (1/K and the majority-class share of B's test labels) are reported with each accuracy, and
// retrieval between modalities through the same embeddings (evaluate_alignment). For a `unicode` model
// also the test split's code health: per-modality perplexity and used codes, and per pair the share of
// samples whose most frequent codes coincide.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "braid/eval/evaluate.h"

namespace braid::eval {

struct CmgOptions {
  std::string train_split = "train";
  std::string test_split = "test";
  int64_t epochs = 300;   // full-batch Adam steps of the head
  double lr = 0.01;
  int64_t hidden = 0;     // 0: linear head; else one hidden ReLU layer of this width
  uint64_t seed = 0;
};

nlohmann::json evaluate_cmg(Pipeline& p, const std::shared_ptr<const data::Manifest>& manifest,
                            const CmgOptions& o = {});

// Human-readable A->B table of an evaluate_cmg result.
std::string format_cmg(const nlohmann::json& r);

}  // namespace braid::eval
