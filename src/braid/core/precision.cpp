#include "braid/core/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "braid/core/error.h"

// LibTorch 2.4 replaced the per-device autocast setters with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define BRAID_AUTOCAST_BY_DEVICE 1
#endif

namespace braid {

Precision parse_precision(const std::string& s, const std::string& where) {
  if (s == "fp32") return Precision::FP32;
  if (s == "bf16") return Precision::BF16;
  input_error("{}: recipe key 'precision': expected fp32 or bf16, got '{}'", where, s);
}

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

namespace {

bool enabled(c10::DeviceType d) {
#ifdef BRAID_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_enabled(c10::DeviceType d, bool on) {
#ifdef BRAID_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(d, on);
#else
  if (d == c10::DeviceType::CUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

c10::ScalarType dtype(c10::DeviceType d) {
#ifdef BRAID_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_dtype(c10::DeviceType d, c10::ScalarType t) {
#ifdef BRAID_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(d, t);
#else
  if (d == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(t);
  else at::autocast::set_autocast_cpu_dtype(t);
#endif
}

}  // namespace

AutocastScope::AutocastScope(c10::DeviceType device, Precision p) : device_(device) {
  if (p != Precision::BF16) return;
  BRAID_INPUT_CHECK(device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA,
                    "precision bf16: autocast needs a cpu or cuda device");
  active_ = true;
  was_enabled_ = enabled(device);
  was_dtype_ = dtype(device);
  set_dtype(device, c10::ScalarType::BFloat16);
  set_enabled(device, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  set_enabled(device_, was_enabled_);
  set_dtype(device_, was_dtype_);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // namespace braid
