#include "braid/nn/fusion.h"

#include "braid/nn/fusion/attention.h"
#include "braid/nn/fusion/concat.h"
#include "braid/nn/fusion/gmu.h"
#include "braid/nn/fusion/graph.h"
#include "braid/nn/fusion/lmf.h"
#include "braid/nn/fusion/max.h"
#include "braid/nn/fusion/mfb.h"
#include "braid/nn/fusion/sum.h"
#include "braid/nn/fusion/tfn.h"

namespace braid::nn {

namespace {
// A factory that reads Options::from_config and builds Impl (docs/fusion.md describes each).
template <typename Impl, typename Options>
FusionRegistry::Factory factory() {
  return [](const Config& c, const FusionContext& ctx) -> FusionPtr {
    return std::make_shared<Impl>(Options::from_config(c), ctx);
  };
}
}  // namespace

const FusionRegistry& fusion_registry() {
  static const FusionRegistry r = [] {
    FusionRegistry r("fusion");
    r.add("concat", "feature-level concatenation of modality vectors (+ presence bits)",
          factory<ConcatFusionImpl, ConcatFusionOptions>());
    r.add("sum", "sum of per-modality linear projections to `dim` (absent modalities add 0)",
          factory<SumFusionImpl, SumFusionOptions>());
    r.add("max", "elementwise max over the present modalities' linear projections to `dim`",
          factory<MaxFusionImpl, MaxFusionOptions>());
    r.add("gmu", "gated multimodal unit (Arevalo 2017): softmax gates over modalities per unit of tanh projections",
          factory<GMUFusionImpl, GMUFusionOptions>());
    r.add("attention", "modality attention: softmax over present modalities of wᵀtanh(W p_m + b), weighted sum of p_m",
          factory<AttentionFusionImpl, AttentionFusionOptions>());
    r.add("tfn", "tensor fusion (Zadeh 2017): outer product of [z_m; 1] over modalities, then Linear + ReLU",
          factory<TFNFusionImpl, TFNFusionOptions>());
    r.add("lmf", "low-rank multimodal fusion (Liu 2018): rank-R factored TFN, all factors trained",
          factory<LMFFusionImpl, LMFFusionOptions>());
    r.add("mfb", "factorized bilinear pooling (Yu 2017) per modality pair, sum-pool k, power + L2 normalization",
          factory<MFBFusionImpl, MFBFusionOptions>());
    r.add("graph", "dynamic fusion graph (Zadeh 2018): a vertex per modality subset with learned efficacies",
          factory<GraphFusionImpl, GraphFusionOptions>());
    return r;
  }();
  return r;
}

}  // namespace braid::nn
