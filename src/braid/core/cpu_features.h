// braid/core/cpu_features.h — what this CPU can do, detected at run time, and the recipe's
// `precision: auto` rule built on it.
//
// Detection reads cpuid and checks with xgetbv that the OS saves the registers the feature needs
// (ZMM state for AVX-512, tile state for AMX); off x86-64 every flag is false. Native bf16 GEMMs
// (what makes CPU autocast bf16 faster than fp32: oneDNN's AVX512-BF16 and AMX kernels) need
// avx512_bf16 or amx_bf16.
#pragma once

#include <c10/core/DeviceType.h>

#include <string>

#include "braid/core/precision.h"

namespace braid {

struct CpuFeatures {
  bool avx2 = false;         // cpuid 7.0 EBX[5], with YMM state enabled
  bool fma = false;          // cpuid 1 ECX[12] (FMA3), with YMM state enabled
  bool avx512f = false;      // cpuid 7.0 EBX[16], with opmask/ZMM state enabled
  bool avx512_bf16 = false;  // cpuid 7.1 EAX[5] (VDPBF16PS), with AVX-512 usable
  bool amx_bf16 = false;     // cpuid 7.0 EDX[22] and AMX-TILE EDX[24], with tile state enabled
  // True when the CPU has bf16 dot-product instructions that oneDNN's bf16 GEMMs use.
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  // The bf16 features present, space-separated ("avx512_bf16 amx_bf16"), or "none".
  std::string bf16_names() const;
};

// The CPU as detected (cached after the first call), ignoring set_cpu_bf16_allowed.
const CpuFeatures& detected_cpu_features();

// The CPU as braid uses it: detected_cpu_features() with avx512_bf16 and amx_bf16 cleared while
// native bf16 is disallowed. Thread-safe.
CpuFeatures cpu_features();

// Allow (default) or forbid the use of native CPU bf16: forbidden, `precision: auto` resolves to
// fp32 on every CPU. The CLI forbids it for BRAID_CPU_BF16=0 (docs/cli.md); tests use it to see the
// fallback on a bf16 host. An explicit `precision: bf16` is unaffected.
void set_cpu_bf16_allowed(bool allowed);
bool cpu_bf16_allowed();

// The recipe's `precision` value resolved for `device`:
//   "fp32" | "bf16": that precision;
//   "auto": bf16 on a CPU device when cpu_features().native_bf16(), else fp32 (also on CUDA, where
//           bf16 stays an explicit choice).
// `reason` says why ("avx512_bf16", "no native bf16 on this CPU", "asked for", ...). Anything else is an
// input error naming `where` (the recipe file) and the key. The first resolution of "auto" in a process
// logs one line ("precision auto -> bf16 (avx512_bf16)").
struct PrecisionChoice {
  Precision precision = Precision::FP32;
  std::string reason;
};
PrecisionChoice resolve_precision(const std::string& value, c10::DeviceType device, const std::string& where);

}  // namespace braid
