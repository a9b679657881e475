// CPU feature detection and the recipe's `precision: auto` (core/cpu_features.h): detection against the
// kernel's view of the CPU, the fallback when native bf16 is forced off (BRAID_CPU_BF16=0), `auto` following
// the detection, bad values naming the key, and bf16 vs fp32 forward parity of a small Transformer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "braid/core/cpu_features.h"
#include "braid/core/error.h"
#include "braid/core/precision.h"
#include "braid/nn/blocks.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

// The flags of the first processor in /proc/cpuinfo (empty when there is none, e.g. not Linux).
std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::set<std::string> out;
    std::istringstream s(line.substr(line.find(':') + 1));
    for (std::string w; s >> w;) out.insert(w);
    return out;
  }
  return {};
}

// Restores native bf16 to allowed when a test ends, however it ends.
struct AllowBf16Again {
  ~AllowBf16Again() { set_cpu_bf16_allowed(true); }
};

}  // namespace

// cpuid + xgetbv agree with the flags Linux reports for the same CPU (which also hides features the kernel
// does not enable). On this project's hosts: AMD EPYC with avx512_bf16, Intel Xeons with amx_bf16 too.
TEST(CpuFeatures, DetectionAgreesWithProcCpuinfo) {
  const auto flags = proc_cpuinfo_flags();
#if !(defined(__x86_64__) || defined(__i386__))
  GTEST_SKIP() << "not an x86 CPU: every feature reads false";
#endif
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line";
  const auto& f = detected_cpu_features();
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") == 1 && flags.count("amx_tile") == 1);
  EXPECT_EQ(f.native_bf16(), f.avx512_bf16 || f.amx_bf16);
  EXPECT_EQ(f.bf16_names() == "none", !f.native_bf16()) << f.bf16_names();
}

// Forced off, braid sees no native bf16 and `auto` falls back to fp32 whatever the CPU has; the detection
// itself is unchanged, and allowing it again restores the detected features.
TEST(CpuFeatures, ForcedOffFallsBackToFp32) {
  AllowBf16Again restore;
  const auto& det = detected_cpu_features();
  set_cpu_bf16_allowed(false);
  EXPECT_FALSE(cpu_bf16_allowed());
  EXPECT_FALSE(cpu_features().native_bf16());
  EXPECT_EQ(cpu_features().avx512f, det.avx512f);  // only the bf16 features are hidden
  auto c = resolve_precision("auto", c10::DeviceType::CPU, "r.yaml");
  EXPECT_EQ(c.precision, Precision::FP32);
  EXPECT_NE(c.reason.find("BRAID_CPU_BF16"), std::string::npos) << c.reason;
  EXPECT_EQ(resolve_precision("bf16", c10::DeviceType::CPU, "r.yaml").precision, Precision::BF16);  // explicit wins
  set_cpu_bf16_allowed(true);
  EXPECT_EQ(cpu_features().native_bf16(), det.native_bf16());
}

// `auto` is bf16 exactly when the CPU has native bf16 GEMMs, and says which feature; fp32 off the CPU;
// fp32 and bf16 are taken as asked.
TEST(CpuFeatures, AutoFollowsTheDetection) {
  const auto& det = detected_cpu_features();
  auto c = resolve_precision("auto", c10::DeviceType::CPU, "r.yaml");
  EXPECT_EQ(c.precision, det.native_bf16() ? Precision::BF16 : Precision::FP32) << c.reason;
  if (det.native_bf16()) EXPECT_EQ(c.reason, det.bf16_names());
  else EXPECT_NE(c.reason.find("no native bf16"), std::string::npos) << c.reason;
  EXPECT_EQ(resolve_precision("auto", c10::DeviceType::CUDA, "r.yaml").precision, Precision::FP32);
  EXPECT_EQ(resolve_precision("fp32", c10::DeviceType::CPU, "r.yaml").precision, Precision::FP32);
  EXPECT_EQ(resolve_precision("bf16", c10::DeviceType::CPU, "r.yaml").precision, Precision::BF16);
}

TEST(CpuFeatures, BadPrecisionValuesNameTheKey) {
  for (const char* bad : {"fp16", "AUTO", "", "bf16 ", "float32"})
    ExpectInputError([&] { resolve_precision(bad, c10::DeviceType::CPU, "r.yaml"); }, "r.yaml",
                     "'precision': expected fp32, bf16 or auto");
}

// bf16 autocast vs fp32 on two pre-norm Transformer blocks (braid's nn::TransformerBlock, width 64,
// 17 tokens, the bench CLIP's block shape at a quarter width), the same weights and input. bf16 keeps
// 8 mantissa bits (relative rounding 2^-9 per product input), so outputs differ, but little: tolerances
// relative L2 error <= 1e-2 and every token's cosine >= 0.999 (measured on the AMD EPYC build host:
// 1.3e-3 and 0.999999). The outputs must differ at all: identical ones would mean autocast never ran.
TEST(CpuFeatures, Bf16ForwardMatchesFp32WithinTolerance) {
  torch::manual_seed(0);
  nn::TransformerBlockOptions o;
  o.dim = 64;
  o.heads = 4;
  nn::TransformerBlock b1(o), b2(o);
  b1->eval();
  b2->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({4, 17, 64});
  auto run = [&](Precision p) {
    AutocastScope ac(c10::DeviceType::CPU, p);
    return b2(b1(x)).to(torch::kFloat);
  };
  auto ref = run(Precision::FP32), got = run(Precision::BF16);
  const double rel = ((got - ref).norm() / ref.norm()).item<double>();
  const double min_cos = torch::cosine_similarity(got.reshape({-1, 64}), ref.reshape({-1, 64}), 1).min().item<double>();
  const double max_abs = (got - ref).abs().max().item<double>();
  std::printf("bf16 vs fp32: relative L2 %.2e, min token cosine %.6f, max |diff| %.3e\n", rel, min_cos, max_abs);
  EXPECT_GT(max_abs, 0.0) << "bf16 and fp32 outputs are identical: autocast did not run";
  EXPECT_LE(rel, 1e-2);
  EXPECT_GE(min_cos, 0.999);
}

// Through the CLI: `precision: auto` logs its choice once and `bench speed` reports what it resolved to;
// BRAID_CPU_BF16=0 makes it fp32 on any CPU.
TEST(CpuFeatures, CliAutoResolvesAndCanBeForcedOff) {
  TempDir t("precision");
  ToyOptions opt;
  opt.n = 24;
  opt.audio = false;
  opt.text = false;
  const std::string manifest = make_toy_dataset((t.path / "data").string(), opt);
  const std::string recipe = t.file("r.yaml", R"(
task: classify
threads: 1
precision: auto
data: {workers: 1, image: {size: 16}}
model:
  name: fusion_classifier
  encoders: {image: {name: image_cnn, channels: [4], dim: 8}}
  head: {hidden: [8]}
train: {batch_size: 4}
)");
  const std::string args = "bench speed " + q(recipe) + " --data " + q(manifest) + " --steps 1 --warmup 1 --repeats 1 --json";
  auto r = run_braid(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const bool bf16 = detected_cpu_features().native_bf16();
  EXPECT_EQ(last_json_line(r.out)["precision"].get<std::string>(), bf16 ? "bf16" : "fp32");
  const std::string line = std::string("precision auto -> ") + (bf16 ? "bf16" : "fp32");
  ASSERT_NE(r.err.find(line), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(line), r.err.rfind(line)) << "logged more than once: " << r.err;

  ::setenv("BRAID_CPU_BF16", "0", 1);
  auto off = run_braid(args);
  ::unsetenv("BRAID_CPU_BF16");
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_EQ(last_json_line(off.out)["precision"].get<std::string>(), "fp32");
  EXPECT_NE(off.err.find("precision auto -> fp32 (native CPU bf16 disabled by BRAID_CPU_BF16=0)"), std::string::npos)
      << off.err;

  auto bad = run_braid("bench speed " + q(recipe) + " --data " + q(manifest) + " --set precision=fp16 --json");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("recipe key 'precision': expected fp32, bf16 or auto, got 'fp16'"), std::string::npos) << bad.err;
}
