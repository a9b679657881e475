// braid/objectives/masking.h — masked-modelling objectives: MLM on text tokens, MRFR / MRC on image patches.
//
// Random draws use torch's global generator, so torch::manual_seed makes them reproducible.
// Shape mismatches throw a one-line braid::InputError naming the shapes.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace braid::objectives {

struct MaskedTokens {
  torch::Tensor input;    // [B, L] int64: ids with the picked positions corrupted
  torch::Tensor targets;  // [B, L] int64: the original id where picked, −100 elsewhere
};

// BERT masking of ids [B, L] (0 = padding, never picked): each non-pad token is picked with
// probability p (default 0.15); a non-empty row with no pick gets one picked token chosen uniformly
// among its non-pad positions. A picked token becomes mask_id with probability 0.8, a uniform random
// id in [1, vocab) with probability 0.1, and stays unchanged with probability 0.1.
MaskedTokens mask_tokens(const torch::Tensor& ids, int64_t mask_id, int64_t vocab, double p = 0.15);

// Mean cross-entropy of logits [B, L, V] over the positions where targets [B, L] != −100
// (torch's cross_entropy with ignore_index −100); 0 (still attached to logits) when none is picked.
torch::Tensor mlm_loss(const torch::Tensor& logits, const torch::Tensor& targets);

// Bool [B, N]: each patch masked with probability p, at least one per row (uniform if none drawn).
torch::Tensor mask_patches(int64_t B, int64_t N, double p = 0.15);

// Masked patch feature regression: pred, target [B, N, D], mask [B, N] bool. The mean over masked
// patches of the mean squared error over D; 0 (attached) when nothing is masked. Pass target detached.
torch::Tensor mrfr_loss(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& mask);

// Masked patch classification: logits [B, N, K], target_ids [B, N] int64 in [0, K) (k-means or VQ
// ids of the clean patches), mask [B, N] bool; mean CE over masked patches, 0 (attached) when none.
torch::Tensor mrc_loss(const torch::Tensor& logits, const torch::Tensor& target_ids, const torch::Tensor& mask);

}  // namespace braid::objectives
