#!/usr/bin/env bash
# Set up, build and run the test suite (ctest). Slow tests carry the ctest label "slow" and
# are skipped here; `bash scripts/test.sh --all` runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=(--test-dir build --output-on-failure -j1)
if [ "${1:-}" != "--all" ]; then args+=(-LE slow); fi
ctest "${args[@]}"
