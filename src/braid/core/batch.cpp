#include "braid/core/batch.h"

#include <torch/torch.h>

namespace braid {

ModalityBatch ModalityBatch::to(const torch::Device& d, bool non_blocking) const {
  return {data.to(d, non_blocking), lengths.to(d, non_blocking), present.to(d, non_blocking)};
}

Batch Batch::to(const torch::Device& d) const {
  if (d.is_cpu()) return *this;
  Batch b;
  b.index = index;
  for (const auto& [k, v] : mods) b.mods[k] = v.to(d, true);
  if (labels.defined()) b.labels = labels.to(d, true);
  if (targets.defined()) b.targets = targets.to(d, true);
  return b;
}

Batch Batch::pinned() const {
  Batch b;
  b.index = index;
  auto pin = [](const torch::Tensor& t) { return t.defined() ? t.pin_memory() : t; };
  for (const auto& [k, v] : mods) b.mods[k] = {pin(v.data), pin(v.lengths), pin(v.present)};
  b.labels = pin(labels);
  b.targets = pin(targets);
  return b;
}

}  // namespace braid
