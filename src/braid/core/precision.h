// braid/core/precision.h — mixed precision: the recipe's `precision` (fp32 | bf16) and an
// autocast scope for forward passes.
//
// bf16 runs the forward pass under LibTorch's autocast: matrix products, convolutions and
// attention in bfloat16, reductions, softmax and losses in fp32, weights and optimizer state
// in fp32 (master weights). Backward runs outside the scope, as autocast requires. Works on
// CUDA and on CPU (where it is slower than fp32 unless the CPU has bf16 instructions).
#pragma once

#include <c10/core/DeviceType.h>

#include <string>

namespace braid {

enum class Precision { FP32, BF16 };

// "fp32" | "bf16"; anything else is an input error naming `where` (e.g. the recipe file).
Precision parse_precision(const std::string& s, const std::string& where);
const char* precision_name(Precision p);

// Autocast on `device` while alive when `p` is BF16 (a no-op for FP32). Restores the previous
// state on exit and clears autocast's cache of bf16 weight copies when the outermost scope
// ends (they go stale after an optimizer step). Nestable.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, Precision p);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false, was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Undefined;
};

}  // namespace braid
