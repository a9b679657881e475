// braid/nn/fusion/common.h — helpers shared by the fusion operators: input checks, presence
// masks, a masked softmax that stays finite when nothing is present, modality subsets.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "braid/nn/fusion.h"

namespace braid::nn::fusion_detail {

// Checks the context a fusion is built for: at least one modality, every d_m > 0, as many
// names as dims (names may be empty). `op` is the registry name, for the message.
void check_context(const std::string& op, const FusionContext& ctx);

// Checks feats (M x [B, d_m], d_m from `dims`) and present [B, M]; c10::Error naming `op`,
// the tensor and both shapes otherwise.
void check_inputs(const std::string& op, const std::vector<int64_t>& dims, const std::vector<torch::Tensor>& feats,
                  const torch::Tensor& present);

// Column m of `present` as a [B, 1] tensor of `dtype` (1 = present, 0 = absent).
torch::Tensor presence_column(const torch::Tensor& present, int64_t m, torch::ScalarType dtype);

// softmax of x over `dim`, restricted to entries where `mask` (bool, broadcastable to x) is
// true; masked entries are 0, and a slice with nothing unmasked is all 0. Forward and backward
// stay finite in every case (no -inf-only softmax is ever taken).
torch::Tensor masked_softmax(const torch::Tensor& x, const torch::Tensor& mask, int64_t dim);

// Every non-empty subset of {0, ..., M-1}, ordered by size, then lexicographically by members
// (Python: itertools.combinations(range(M), k) for k = 1..M).
std::vector<std::vector<int64_t>> modality_subsets(int64_t M);

}  // namespace braid::nn::fusion_detail
