#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: set up, build, build the emoji data, train
# image / text / audio / fused classifiers and print the test table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec build/apps/braid/braid quickstart --out runs/quickstart --data data/emoji "$@"
