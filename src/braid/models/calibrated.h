// braid/models/calibrated.h — a model with parameters fitted after training on the validation split.
//
// Post-hoc calibration (e.g. fusion_classifier's per-expert temperatures, `late_conf` with
// `calibrate: temperature`) is not learned by gradient on the training split: it is fitted once,
// after the trainer has restored the best validated weights, on the validation batches, and then
// saved with the model (as buffers, so `braid eval` and serving read it like any weight). The
// trainer asks for this interface; a model that does not implement it has nothing to fit.
#pragma once

#include <string>
#include <vector>

#include "braid/core/batch.h"

namespace braid::models {

class Calibrated {
 public:
  virtual ~Calibrated() = default;
  // Whether this model, as its recipe configured it, has anything to fit (else the trainer
  // gathers no validation batches for it).
  virtual bool calibrates() const = 0;
  // Fit on `val` (batches on the model's device, with labels), in evaluation mode and without
  // gradients. Returns a one-line summary for the log ("" when `calibrates()` is false).
  virtual std::string calibrate(const std::vector<Batch>& val) = 0;
};

}  // namespace braid::models
