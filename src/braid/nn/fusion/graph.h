// braid/nn/fusion/graph.h — dynamic fusion graph (Zadeh et al. 2018, "Multimodal Language Analysis
// in the Wild: CMU-MOSEI and Interpretable Dynamic Fusion Graph", ACL).
//
// One vertex per non-empty subset S of the modalities, in the order of
// fusion_detail::modality_subsets (by size, then lexicographic). A unimodal vertex is the projection
// v_{m} = W_m h_m + b_m (to dim). A vertex with |S| ≥ 2 is v_S = D_S(Σ_{c} α_{c→S} · v_c) over its
// children c (the subsets of size |S|−1), where D_S is an MLP (dim -> hidden -> dim) and the
// efficacies α = σ(D_α([h_1; ...; h_M])) come from one MLP (Σd_m -> hidden -> #edges) over all
// inputs. Output: every vertex concatenated, out_dim = (2^M − 1) · dim.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "braid/core/config.h"
#include "braid/nn/blocks.h"
#include "braid/nn/fusion.h"

namespace braid::nn {

struct GraphFusionOptions {
  int64_t dim = 64;     // width of every vertex (out_dim = (2^M − 1) · dim)
  int64_t hidden = 64;  // hidden width of the vertex MLPs D_S and of the efficacy MLP D_α
  static GraphFusionOptions from_config(const Config& c);
};

// At most this many modalities (2^M − 1 vertices).
inline constexpr int64_t kGraphMaxModalities = 8;

// Parameters: proj.<m>.{weight,bias}; vertex.<i>.seq.{0,2}.{weight,bias} for the i-th vertex with
// |S| ≥ 2; efficacy.seq.{0,2}.{weight,bias} (absent when M = 1). Edge e (child c -> parent S) is
// listed parent by parent in vertex order, children in vertex order.
// Missing modalities: their unimodal vertex is 0; the efficacy of every edge whose child contains
// an absent modality is 0; a vertex none of whose modalities is present is 0. A row with nothing
// present gives 0. One modality: the single vertex, its projection.
class GraphFusionImpl : public FusionImpl {
 public:
  struct Edge {
    int64_t child, parent;  // vertex indices
  };
  GraphFusionImpl(GraphFusionOptions o, const FusionContext& ctx);
  torch::Tensor forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) override;
  // Vertices (subsets of modality indices) in output order.
  const std::vector<std::vector<int64_t>>& vertices() const { return subsets_; }
  // Edges in efficacy order.
  const std::vector<Edge>& edges() const { return edges_; }
  // Efficacies α [B, #edges] of the last forward (detached, after masking), for inspection.
  const torch::Tensor& last_efficacies() const { return last_alpha_; }
  GraphFusionOptions options;

 private:
  std::vector<int64_t> dims_;
  std::vector<std::vector<int64_t>> subsets_;
  std::vector<Edge> edges_;
  torch::nn::ModuleList proj_{nullptr}, vertex_{nullptr};
  std::vector<torch::nn::Linear> lin_;
  std::vector<MLP> vmlp_;  // index: vertex index − M
  MLP efficacy_{nullptr};
  torch::Tensor last_alpha_;
};

}  // namespace braid::nn
