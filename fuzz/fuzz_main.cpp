// fuzz/fuzz_main.cpp — one libFuzzer target; BRAID_FUZZ_TARGET (set by fuzz/CMakeLists.txt) names the entry
// of fuzz/entries.cpp it drives. An InputError is the expected refusal; any other exception aborts, which
// libFuzzer reports as a crash and saves the input.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    braid::fuzz::run_entry(BRAID_FUZZ_TARGET, data, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid fuzz %s: finding: %s\n", BRAID_FUZZ_TARGET, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "braid fuzz %s: finding: a non-std exception\n", BRAID_FUZZ_TARGET);
    std::abort();
  }
  return 0;
}
