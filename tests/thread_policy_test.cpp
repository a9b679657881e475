// The OpenMP wait policy of the braid binary (apps/braid/main.cpp, issue 19): with neither OMP_WAIT_POLICY nor
// GOMP_SPINCOUNT set, every command but the training ones (train, quickstart, bench without --infer-only)
// runs braid again with OMP_WAIT_POLICY=passive (libgomp reads it only at load), with the same arguments; a
// user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept as it is. Seen through `braid -v`,
// whose first log line reports the variables as the running process sees them, and through libgomp itself
// (OMP_DISPLAY_ENV=verbose: the spin count it parsed when it loaded; passive waits = 0).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "test_util.h"

using namespace braid;
using braid::test::run_braid;

namespace {

// Sets (or unsets: nullopt) environment variables for a test, then puts the old values back.
struct Env {
  std::map<std::string, std::optional<std::string>> old;
  explicit Env(const std::map<std::string, std::optional<std::string>>& set) {
    for (const auto& [k, v] : set) {
      const char* o = std::getenv(k.c_str());
      old[k] = o ? std::optional<std::string>(o) : std::nullopt;
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }
  ~Env() {
    for (const auto& [k, v] : old) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }
};

const std::map<std::string, std::optional<std::string>> kClean = {{"OMP_WAIT_POLICY", std::nullopt},
                                                                   {"GOMP_SPINCOUNT", std::nullopt},
                                                                   {"BRAID_OMP_POLICY_SET", std::nullopt},
                                                                   {"OMP_DISPLAY_ENV", "verbose"}};

std::map<std::string, std::optional<std::string>> with(std::map<std::string, std::optional<std::string>> m,
                                                       const std::string& k, const std::string& v) {
  m[k] = v;
  return m;
}

}  // namespace

TEST(ThreadPolicy, BraidSetsPassiveWaitsWhenTheUserSetNothing) {
  Env e(kClean);
  auto r = run_braid("-v list fusions");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("OpenMP waits: OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=(unset) (braid's default"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("fusions:"), std::string::npos) << "the arguments reach the re-executed process\n" << r.out;
  // libgomp's own view (OMP_DISPLAY_ENV=verbose prints it when it loads): the process that runs has spin count 0
  const auto last = r.err.rfind("GOMP_SPINCOUNT = '");
  ASSERT_NE(last, std::string::npos) << r.err;
  EXPECT_EQ(r.err.substr(last, 21), "GOMP_SPINCOUNT = '0'\n") << r.err;
}

// Training commands keep libgomp's own waits (spin, then sleep): no passive re-exec for `train` / `quickstart` /
// `bench` (but `bench ... --infer-only`).
TEST(ThreadPolicy, TrainingCommandsKeepLibgompsSpinWaits) {
  Env e(kClean);
  braid::test::TempDir dir("thread_policy");
  const std::string recipe = dir.file("bad.yaml", "task: [\n");  // fails after the log line: nothing is trained
  auto r = run_braid("-v train " + recipe + " --out " + dir.file("run"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("OMP_WAIT_POLICY=(unset) GOMP_SPINCOUNT=(unset) (libgomp's default: braid's choice for "
                       "training and benchmarks)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << "not made passive\n" << r.err;
  EXPECT_NE(r.err.find("GOMP_SPINCOUNT = '300000'"), std::string::npos) << r.err;
  // benchmarks: the same unless they time inference only (the ONNX Runtime comparisons and their busy rounds)
  for (const std::string flag : {"", " --infer-only"}) {
    auto b = run_braid("-v bench speed " + recipe + flag);
    EXPECT_EQ(b.code, 2) << b.err;
    const auto last = b.err.rfind("GOMP_SPINCOUNT = '");
    ASSERT_NE(last, std::string::npos) << b.err;
    EXPECT_EQ(b.err.substr(last, 21 + (flag.empty() ? 5 : 0)),
              flag.empty() ? "GOMP_SPINCOUNT = '300000'\n" : "GOMP_SPINCOUNT = '0'\n")
        << flag << "\n" << b.err;
  }
}

TEST(ThreadPolicy, TheUsersOwnSettingIsKept) {
  {
    Env e(with(kClean, "OMP_WAIT_POLICY", "active"));
    auto r = run_braid("-v list fusions");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("OMP_WAIT_POLICY=active GOMP_SPINCOUNT=(unset) (from the environment)"), std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("GOMP_SPINCOUNT = '0'"), std::string::npos) << "not made passive\n" << r.err;
  }
  {
    Env e(with(kClean, "GOMP_SPINCOUNT", "10000"));
    auto r = run_braid("-v list fusions");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("OMP_WAIT_POLICY=(unset) GOMP_SPINCOUNT=10000 (from the environment)"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("GOMP_SPINCOUNT = '10000'"), std::string::npos) << r.err;
  }
}

// OpenBLAS's kernels: Debian's OpenBLAS 0.3.21 falls back to generic Prescott kernels on CPUs newer than it; braid
// then names SkylakeX (AVX-512) or Haswell (AVX2) for its re-exec, unless the user set OPENBLAS_CORETYPE or
// BRAID_OPENBLAS_CORETYPE=0. OPENBLAS_VERBOSE=2 makes OpenBLAS print the core it loads with ("Core: X") in each
// process, so the last such line is the running process's.
namespace {
std::string last_core(const std::string& err) {
  const auto at = err.rfind("Core: ");
  if (at == std::string::npos) return "";
  return err.substr(at + 6, err.find('\n', at) - at - 6);
}
const auto kBlasClean = with(with(kClean, "OPENBLAS_VERBOSE", "2"), "BRAID_OPENBLAS_CORETYPE", "");
}  // namespace

TEST(ThreadPolicy, OpenBlasCoreIsChosenOnlyWhenOpenBlasSawAGenericCore) {
  auto clean = kBlasClean;
  clean["OPENBLAS_CORETYPE"] = std::nullopt;
  clean["BRAID_OPENBLAS_CORETYPE"] = std::nullopt;
  Env e(clean);
  auto r = run_braid("-v list fusions");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto first = r.err.find("Core: ");
  if (first == std::string::npos) GTEST_SKIP() << "the BLAS is not OpenBLAS (no 'Core:' line)";
  const std::string first_core = r.err.substr(first + 6, r.err.find('\n', first) - first - 6);
  if (r.err.find("(braid's choice: OpenBLAS saw a generic core)") != std::string::npos) {
    EXPECT_TRUE(first_core == "Prescott" || first_core == "Core2" || first_core == "Nehalem" ||
                first_core == "Penryn" || first_core == "Dunnington" || first_core == "Atom" || first_core == "Unknown")
        << r.err;
    const std::string now = last_core(r.err);
    EXPECT_TRUE(now == "SkylakeX" || now == "Haswell") << r.err;
    EXPECT_NE(r.err.find("OpenBLAS core: " + now + " (braid's choice"), std::string::npos) << r.err;
  } else {
    EXPECT_NE(r.err.find("OpenBLAS core: OpenBLAS's own choice"), std::string::npos) << r.err;
    EXPECT_EQ(last_core(r.err), first_core) << r.err;
  }
}

TEST(ThreadPolicy, TheUsersOpenBlasCoreIsKept) {
  {
    Env e(with(kBlasClean, "OPENBLAS_CORETYPE", "Haswell"));
    auto r = run_braid("-v list fusions");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("OpenBLAS core: Haswell (from the environment)"), std::string::npos) << r.err;
  }
  {
    auto m = with(kBlasClean, "BRAID_OPENBLAS_CORETYPE", "0");
    m["OPENBLAS_CORETYPE"] = std::nullopt;
    Env e(m);
    auto r = run_braid("-v list fusions");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("OpenBLAS core: OpenBLAS's own choice"), std::string::npos) << r.err;
  }
}
