#include "braid/core/cpu_features.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>

#include "braid/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define BRAID_X86 1
#endif

namespace braid {

namespace {

#ifdef BRAID_X86
uint64_t xcr0() {  // the register states the OS saves (XCR0); xgetbv is valid only when OSXSAVE is set
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef BRAID_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  if (!(c & (1u << 27))) return f;  // no OSXSAVE: no AVX state at all
  const uint64_t x = xcr0();
  const bool ymm = (x & 0x6) == 0x6;           // SSE + AVX state
  f.fma = ymm && (c & (1u << 12));
  const bool zmm = ymm && (x & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool tiles = (x & 0x60000) == 0x60000; // XTILECFG, XTILEDATA
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned max_sub = a;
  f.avx2 = ymm && (b & (1u << 5));
  f.avx512f = zmm && (b & (1u << 16));
  f.amx_bf16 = tiles && (d & (1u << 22)) && (d & (1u << 24));
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = f.avx512f && (a & (1u << 5));
  }
#endif
  return f;
}

std::atomic<bool> g_bf16_allowed{true};
std::atomic<bool> g_auto_logged{false};

}  // namespace

std::string CpuFeatures::bf16_names() const {
  std::string s;
  if (avx512_bf16) s += "avx512_bf16";
  if (amx_bf16) s += s.empty() ? "amx_bf16" : " amx_bf16";
  return s.empty() ? "none" : s;
}

const CpuFeatures& detected_cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

CpuFeatures cpu_features() {
  CpuFeatures f = detected_cpu_features();
  if (!cpu_bf16_allowed()) f.avx512_bf16 = f.amx_bf16 = false;
  return f;
}

void set_cpu_bf16_allowed(bool allowed) { g_bf16_allowed = allowed; }
bool cpu_bf16_allowed() { return g_bf16_allowed; }

PrecisionChoice resolve_precision(const std::string& value, c10::DeviceType device, const std::string& where) {
  PrecisionChoice c;
  if (value == "fp32" || value == "bf16") {
    c.precision = value == "bf16" ? Precision::BF16 : Precision::FP32;
    c.reason = "asked for";
    return c;
  }
  if (value != "auto")
    input_error("{}: recipe key 'precision': expected fp32, bf16 or auto, got '{}'", where, value);
  if (device != c10::DeviceType::CPU) {
    c.reason = "auto keeps fp32 off the CPU; ask for bf16 explicitly";
  } else if (!cpu_bf16_allowed()) {
    c.reason = "native CPU bf16 disabled by BRAID_CPU_BF16=0";
  } else if (const auto f = cpu_features(); f.native_bf16()) {
    c.precision = Precision::BF16;
    c.reason = f.bf16_names();
  } else {
    c.reason = "no native bf16 on this CPU";
  }
  if (!g_auto_logged.exchange(true)) spdlog::info("precision auto -> {} ({})", precision_name(c.precision), c.reason);
  return c;
}

}  // namespace braid
