#include "braid/nn/fusion/graph.h"

#include <torch/torch.h>

#include <algorithm>

#include "braid/nn/fusion/common.h"

namespace braid::nn {

using namespace fusion_detail;

GraphFusionOptions GraphFusionOptions::from_config(const Config& c) {
  GraphFusionOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  BRAID_INPUT_CHECK(o.dim > 0 && o.hidden > 0, "{}: '{}' needs positive dim and hidden (got {}, {})", c.origin(),
                    c.path(), o.dim, o.hidden);
  return o;
}

GraphFusionImpl::GraphFusionImpl(GraphFusionOptions o, const FusionContext& ctx) : options(o), dims_(ctx.dims) {
  check_context("graph", ctx);
  TORCH_CHECK(o.dim > 0 && o.hidden > 0, "graph fusion: dim and hidden must be positive");
  const auto M = static_cast<int64_t>(dims_.size());
  TORCH_CHECK(M <= kGraphMaxModalities, "graph fusion: ", M, " modalities give ", (int64_t{1} << M) - 1,
              " vertices; at most ", kGraphMaxModalities, " modalities are supported");
  subsets_ = modality_subsets(M);
  const auto V = static_cast<int64_t>(subsets_.size());
  for (int64_t s = M; s < V; ++s)
    for (int64_t c = 0; c < s; ++c) {
      const auto &S = subsets_[s], &C = subsets_[c];
      if (C.size() + 1 == S.size() && std::includes(S.begin(), S.end(), C.begin(), C.end())) edges_.push_back({c, s});
    }
  proj_ = register_module("proj", torch::nn::ModuleList());
  int64_t total = 0;
  for (auto d : dims_) {
    lin_.emplace_back(d, o.dim);
    proj_->push_back(lin_.back());
    total += d;
  }
  vertex_ = register_module("vertex", torch::nn::ModuleList());
  for (int64_t s = M; s < V; ++s) {
    vmlp_.emplace_back(MLPOptions{o.dim, {o.hidden}, o.dim, 0.0});
    vertex_->push_back(vmlp_.back());
  }
  if (!edges_.empty())
    efficacy_ = register_module("efficacy", MLP(MLPOptions{total, {o.hidden}, static_cast<int64_t>(edges_.size()), 0.0}));
  out_dim_ = V * o.dim;
}

torch::Tensor GraphFusionImpl::forward(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  check_inputs("graph", dims_, feats, present);
  const auto M = static_cast<int64_t>(dims_.size());
  const auto V = static_cast<int64_t>(subsets_.size());
  const auto dt = feats[0].scalar_type();
  auto pres = (present > 0.5).to(dt);  // [B, M]
  std::vector<torch::Tensor> v(V);
  for (int64_t m = 0; m < M; ++m) v[m] = lin_[m]->forward(feats[m]) * pres.select(1, m).unsqueeze(1);  // [B, dim]
  // every(S): 1 where all of S is present; any(S): 1 where some of S is present. [B, 1]
  auto every = [&](const std::vector<int64_t>& S) {
    torch::Tensor r;
    for (auto m : S) r = r.defined() ? r * pres.select(1, m) : pres.select(1, m);
    return r.unsqueeze(1);
  };
  auto any = [&](const std::vector<int64_t>& S) {
    torch::Tensor r;
    for (auto m : S) r = r.defined() ? torch::maximum(r, pres.select(1, m)) : pres.select(1, m);
    return r.unsqueeze(1);
  };
  if (edges_.empty()) {
    last_alpha_ = torch::Tensor();
    return v[0];
  }
  auto alpha = torch::sigmoid(efficacy_->forward(torch::cat(feats, 1)));  // [B, E]
  std::vector<torch::Tensor> emask;
  for (const auto& e : edges_) emask.push_back(every(subsets_[e.child]));
  alpha = alpha * torch::cat(emask, 1);  // edges from a child with an absent modality: 0
  last_alpha_ = alpha.detach();
  std::vector<torch::Tensor> acc(V);
  for (size_t e = 0; e < edges_.size(); ++e) {
    const auto [c, s] = edges_[e];
    auto term = alpha.narrow(1, static_cast<int64_t>(e), 1) * v[c];  // [B, dim]
    acc[s] = acc[s].defined() ? acc[s] + term : term;
    // all edges into s come before those into any later vertex, and children precede parents
    if (e + 1 == edges_.size() || edges_[e + 1].parent != s)
      v[s] = vmlp_[s - M]->forward(acc[s]) * any(subsets_[s]);
  }
  return torch::cat(v, 1);  // [B, V·dim]
}

}  // namespace braid::nn
