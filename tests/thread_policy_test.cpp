// The OpenMP wait policy of the braid binary (apps/braid/main.cpp, issue 19): with neither OMP_WAIT_POLICY nor
// GOMP_SPINCOUNT set, braid runs itself again with OMP_WAIT_POLICY=passive (libgomp reads it only at load), with
// the same arguments; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept as it is. Seen through `braid -v`,
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
