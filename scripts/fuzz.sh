#!/usr/bin/env bash
# scripts/fuzz.sh — build the libFuzzer targets (clang, ASan + UBSan) and run each for N seconds.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     # default 60 s for every target of fuzz/CMakeLists.txt
#
# Nothing here touches the normal build: the fuzzers live in build-fuzz/ (a project of their own,
# fuzz/CMakeLists.txt, that compiles braid's core and data layers with the sanitizers). Each target starts
# from its committed seeds (fuzz/corpus/<target>/, copied to build-fuzz/work/<target>/ so new inputs stay
# out of git); what it finds goes to build-fuzz/findings/<target>/. A finding is fixed, its input committed
# under fuzz/regressions/<target>/ (tests/fuzz_regression_test.cpp replays it). docs/fuzzing.md has the
# figures of the last run. Exit status: 0 when no target found anything, 1 otherwise.
set -euo pipefail

secs=${1:-60}
shift || true
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-fuzz
lock=/tmp/braid-build.lock  # builds on a shared machine take turns (a no-op elsewhere)

# A clang whose -fsanitize=fuzzer links (Debian 12: clang-14 + libclang-rt-14-dev).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
  > "$probe/p.cpp"
find_clang() {
  for c in clang++ clang++-14 clang++-15 clang++-16; do
    if command -v "$c" > /dev/null && "$c" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2> /dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
if ! cxx=$(find_clang); then
  echo "fuzz.sh: no clang with libFuzzer; installing clang-14 and libclang-rt-14-dev (Debian)" >&2
  apt-get install -y --no-install-recommends clang-14 libclang-rt-14-dev > /dev/null || {
    echo "fuzz.sh: apt-get install failed (run as root, after apt-get update)" >&2
    exit 2
  }
  cxx=$(find_clang) || { echo "fuzz.sh: clang installed but -fsanitize=fuzzer does not link" >&2; exit 2; }
fi
cc=${cxx/clang++/clang}

if [ ! -f "$build/build.ninja" ]; then
  mkdir -p "$build"
  cmake -S "$root/fuzz" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" > "$build/configure.log" 2>&1 ||
    { tail -30 "$build/configure.log"; exit 2; }
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(sed -n 's/^set(BRAID_FUZZ_TARGETS \(.*\))$/\1/p' "$root/fuzz/CMakeLists.txt"))
fi
flock "$lock" cmake --build "$build" -j2 --target $(printf 'fuzz_%s ' "${targets[@]}")

# UBSan reports are findings (halt); LeakSanitizer stays on (libFuzzer checks each input for leaks).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_odr_violation=0:alloc_dealloc_mismatch=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/fuzz/lsan.supp:print_suppressions=0}  # library leaks, documented
export OMP_NUM_THREADS=1

total_found=0
summary=$(printf '%-12s %10s %8s %6s %8s  %s\n' target executions exec/s cov corpus findings)
for t in "${targets[@]}"; do
  work=$build/work/$t
  found=$build/findings/$t
  mkdir -p "$work" "$found"
  rm -f "$found"/*  # this run's findings only (fixed ones live on in fuzz/regressions/)
  cp -n "$root/fuzz/corpus/$t/"* "$work/" 2> /dev/null || true
  log=$build/logs/$t.log
  mkdir -p "$(dirname "$log")"
  echo "== $t: ${secs} s" >&2
  dirs=("$work")
  [ -d "$root/fuzz/regressions/$t" ] && dirs+=("$root/fuzz/regressions/$t")
  set +e
  # -timeout: one input taking 25 s is a hang; -rss_limit_mb: the image decoder may take ~1 GB at its pixel limit.
  "$build/fuzz_$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$found/" "${dirs[@]}" > "$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)  # none when a seed crashes at start
  nfound=$(find "$found" -type f | wc -l)
  total_found=$((total_found + nfound))
  note=""
  if [ "$rc" -ne 0 ]; then note=" (exit $rc; see $log)"; fi
  line=$(printf '%-12s %10s %8s %6s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$(ls "$work" | wc -l)" \
    "$nfound$note")
  summary+=$'\n'"$line"
done
echo "$summary"
echo "findings: $total_found (inputs under $build/findings/)"
[ "$total_found" -eq 0 ]
