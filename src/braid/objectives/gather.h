// braid/objectives/gather.h — every data-parallel rank's rows for batch-coupled losses.
//
// CLIP, SigLIP and single_tower's ITC contrast each row with every other row of the batch, so with
// N ranks of B rows each, a loss over each rank's own B rows is not the loss of one process with
// N·B rows (it has fewer negatives). While a data-parallel training step runs, train/ installs a
// GatherScope; a model then calls gather_rows() on its embeddings and computes the loss over the
// global batch. Only this rank's rows carry gradient, scaled by the world size, so that the ranks'
// averaged gradients equal the gradient of the global-batch loss (the 2 × B = 1 × 2B equivalence
// holds for these losses too; tests/distributed_test.cpp). Without a scope gather_rows is the
// identity.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace braid::objectives {

// What a collective returns: the rows of all ranks in rank order, and where this rank's start.
struct GatheredRows {
  torch::Tensor rows;  // [Σ_r b_r, D]
  int64_t offset = 0;  // this rank's first row in `rows`
};
// Gathers a [b, D] tensor (b may differ per rank, also 0) from every rank; no gradient.
using RowGather = std::function<GatheredRows(const torch::Tensor&)>;

// Installs `gather` for this thread until the scope ends (scopes do not nest).
class GatherScope {
 public:
  GatherScope(RowGather gather, int world);
  ~GatherScope();
  GatherScope(const GatherScope&) = delete;
  GatherScope& operator=(const GatherScope&) = delete;
};

// True inside a GatherScope: batch-coupled losses should use gather_rows.
bool gathering();

// x [b, D] (this rank's rows) -> [Σ_r b_r, D]: the other ranks' rows as constants, x's rows in
// place with their gradient multiplied by the world size. The identity outside a scope. Every
// rank must call it the same number of times in the same order.
torch::Tensor gather_rows(const torch::Tensor& x);

// gather_rows of two row-aligned tensors u [b, Du], v [b, Dv] (the two sides of contrastive pairs)
// in one collective: the rows stay paired. The identity outside a scope.
std::pair<torch::Tensor, torch::Tensor> gather_pairs(const torch::Tensor& u, const torch::Tensor& v);

}  // namespace braid::objectives
