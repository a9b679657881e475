// The fuzz corpus and the regression inputs (fuzz/corpus/<target>/, fuzz/regressions/<target>/) replayed
// through the same entry functions the libFuzzer targets call (fuzz/entries.cpp; scripts/fuzz.sh runs the
// fuzzers, docs/fuzzing.md). Each input must parse or be refused with a one-line InputError; a crash, a
// sanitizer-free but wrong result (the entries check invariants) or any other exception fails here too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <cstdio>
#include <set>

#include "../fuzz/entries.h"
#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/data/npy.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kFuzzDir = BRAID_FUZZ_DIR;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Every file below fuzz/<kind>/<target>/ through its entry; returns how many were replayed.
int replay(const std::string& kind, int* parsed) {
  int n = 0;
  const std::set<std::string> known(braid::fuzz::target_names().begin(), braid::fuzz::target_names().end());
  for (const auto& dir : fs::directory_iterator(fs::path(kFuzzDir) / kind)) {
    const std::string target = dir.path().filename().string();
    EXPECT_TRUE(known.count(target)) << kind << "/" << target << ": not a fuzz target (fuzz/entries.cpp)";
    if (!known.count(target)) continue;
    for (const auto& f : fs::directory_iterator(dir.path())) {
      const std::string bytes = slurp(f.path());
      SCOPED_TRACE(f.path().string());
      try {
        const bool ok = braid::fuzz::run_entry(target, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        *parsed += ok;
        if (!ok) std::printf("[ refused  ] %s/%s/%s\n", kind.c_str(), target.c_str(), f.path().filename().c_str());
      } catch (const std::exception& e) {
        ADD_FAILURE() << f.path().string() << ": finding: " << e.what();
      }
      ++n;
    }
  }
  return n;
}

}  // namespace

TEST(FuzzRegression, EveryTargetHasASeedCorpus) {
  for (const auto& t : braid::fuzz::target_names()) {
    const fs::path d = fs::path(kFuzzDir) / "corpus" / t;
    ASSERT_TRUE(fs::is_directory(d)) << d << " is missing";
    EXPECT_FALSE(fs::is_empty(d)) << d << " is empty";
  }
  EXPECT_THROW(braid::fuzz::run_entry("no_such_target", nullptr, 0), std::invalid_argument);
}

TEST(FuzzRegression, CorpusParses) {
  int parsed = 0;
  const int n = replay("corpus", &parsed);
  EXPECT_GE(n, 40);
  // The seeds are valid inputs but one (series_csv/nan.csv, refused by design: a NaN cell), so the fuzzers
  // start inside each format.
  EXPECT_EQ(parsed, n - 1) << parsed << " of " << n << " seeds parsed";
}

TEST(FuzzRegression, RegressionsAreRefusedCleanly) {
  int parsed = 0;
  const int n = replay("regressions", &parsed);
  EXPECT_GE(n, 1);
}

TEST(FuzzRegression, EntriesCheckInvariants) {
  // A malformed input is refused (false), a valid one parsed (true): the entries do call the parsers.
  const std::string bad = "not a png";
  EXPECT_FALSE(braid::fuzz::run_entry("image", reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
  const std::string csv = "1,2\n3,4\n";
  EXPECT_TRUE(braid::fuzz::run_entry("series_csv", reinterpret_cast<const uint8_t*>(csv.data()), csv.size()));
  const std::string yaml = "a: [1, 2]\nb: {c: x}\n";
  // The recipe entry runs the unknown-key check after reading every key: a parsed recipe passes it.
  EXPECT_TRUE(braid::fuzz::run_entry("recipe", reinterpret_cast<const uint8_t*>(yaml.data()), yaml.size()));
}

// Checked arithmetic (issue 18): numel * itemsize used to wrap to 0 for [2^31, 2^30] x F64, which matched
// data_offsets [0, 0]; torch::empty then threw a c10::Error ("Storage size calculation overflowed") instead
// of an InputError naming the file and tensor.
TEST(FuzzRegression, SafetensorsShapeBytesCannotWrap) {
  const std::string path = (fs::path(kFuzzDir) / "regressions/safetensors/numel_times_size_wraps.safetensors").string();
  try {
    braid::read_safetensors(path);
    FAIL() << "expected an InputError";
  } catch (const braid::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w': shape too large"), std::string::npos) << e.what();
  }
  // A zero-sized tensor with dims whose product overflows is refused too (torch's own size arithmetic).
  const std::string hdr =
      R"({"z": {"dtype": "F32", "shape": [0, 4611686018427387904, 4611686018427387904], "data_offsets": [0, 0]}})";
  braid::test::TempDir tmp("fuzz_st");
  const std::string dir = tmp.path.string();
  const std::string p2 = dir + "/z.safetensors";
  {
    std::ofstream f(p2, std::ios::binary);
    uint64_t len = hdr.size();
    for (int i = 0; i < 8; ++i) f.put(char(len >> (8 * i)));
    f << hdr;
  }
  EXPECT_THROW(braid::read_safetensors(p2), braid::InputError);
}

TEST(FuzzRegression, NpyShapeBytesCannotWrap) {
  braid::test::TempDir tmp("fuzz_npy");
  const std::string dir = tmp.path.string();
  auto write = [&](const std::string& shape) {
    std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
    dict.append(118 - dict.size(), ' ');
    dict.push_back('\n');
    const std::string p = dir + "/a.npy";
    std::ofstream f(p, std::ios::binary);
    f << std::string("\x93NUMPY\x01\x00", 8) << char(dict.size() & 0xff) << char(dict.size() >> 8) << dict;
    return p;
  };
  // Empty arrays with large dims are valid numpy; their byte span must stay below 2^62.
  EXPECT_EQ(braid::data::read_npy(write("(0, 1099511627776)")).numel(), 0);
  try {
    braid::data::read_npy(write("(0, 4611686018427387904, 4611686018427387904)"));
    FAIL() << "expected an InputError";
  } catch (const braid::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("overflows"), std::string::npos) << e.what();
  }
  EXPECT_THROW(braid::data::read_npy(write("(2147483648, 1073741824)")), braid::InputError);
}
