// braid/eval/rerank.h — retrieval re-ranked by a single-tower model's image-text matching head.
//
// For each query (an image, or a text), the gallery of the other modality is first ranked by the
// ITC embeddings (cosine); the top k (16) are then re-ordered by the ITM match logit of the fused
// (image, text) pair. Ranks beyond k keep their ITC order. Relevant = same group, as in
// evaluate_alignment; R@1/5/10 and median / mean rank of the first relevant item.
#pragma once

#include <nlohmann/json.hpp>

#include "braid/eval/evaluate.h"

namespace braid::eval {

// "image->text" and "text->image" metrics; InputError when the run's model is not a single tower.
nlohmann::json evaluate_itm_rerank(Pipeline& p, data::Loader& loader, int64_t k = 16);

// Ranks (1-based) of the first relevant item, re-ranking the top k of `sim` [N, M] by `rerank`
// [N, k] scores of those candidates (given in sim's top-k order). relevant [N, M] bool.
torch::Tensor rerank_ranks(const torch::Tensor& sim, const torch::Tensor& topk_idx, const torch::Tensor& rerank,
                           const torch::Tensor& relevant);

}  // namespace braid::eval
