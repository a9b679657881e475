// fuzz/entries.h — the fuzz entry functions: arbitrary bytes -> one of braid's parsers of untrusted input.
//
// Compiled into both the libFuzzer targets (fuzz/fuzz_main.cpp, built by scripts/fuzz.sh with clang,
// ASan and UBSan) and braid_tests (tests/fuzz_regression_test.cpp replays fuzz/corpus and
// fuzz/regressions through the same functions, no clang needed).
//
// The contract every parser must keep: any input either parses or throws braid::InputError (the
// one-line "file: what was expected" error). Each entry catches InputError and returns; anything else
// (another exception type, a crash, a sanitizer report, a broken invariant checked here) escapes and
// is a finding. Entries that need a file write the bytes to a private temp folder (mkdtemp) first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace braid::fuzz {

// Thrown by an entry when a parser broke an invariant the entry checks (never an InputError).
struct Finding : std::exception {
  std::string what_;
  explicit Finding(std::string w) : what_(std::move(w)) {}
  const char* what() const noexcept override { return what_.c_str(); }
};

// The target names (also the folder names under fuzz/corpus and fuzz/regressions).
const std::vector<std::string>& target_names();

// Run one input through `target`. Returns true when the input parsed, false when it was refused with
// an InputError. Throws Finding, or lets any other exception through, for a finding; throws
// std::invalid_argument for an unknown target name.
bool run_entry(const std::string& target, const uint8_t* data, size_t size);

}  // namespace braid::fuzz
