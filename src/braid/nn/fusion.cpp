#include "braid/nn/fusion.h"

#include "braid/nn/fusion/concat.h"

namespace braid::nn {

const FusionRegistry& fusion_registry() {
  static const FusionRegistry r = [] {
    FusionRegistry r("fusion");
    r.add("concat", "feature-level concatenation of modality vectors (+ presence bits)",
          [](const Config& c, const FusionContext& ctx) -> FusionPtr {
            return std::make_shared<ConcatFusionImpl>(ConcatFusionOptions::from_config(c), ctx);
          });
    return r;
  }();
  return r;
}

}  // namespace braid::nn
