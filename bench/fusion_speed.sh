#!/usr/bin/env bash
# braid vs PyTorch speed on AV-MNIST fusion models (late/concat fusion, TFN, LMF).
#
# For each model, `braid bench speed` builds recipes/avmnist_late_fusion.yaml (with the fusion
# swapped by --set), takes the first training batch, dumps it (.npy + model.json) and times
# training steps and inference; bench/peer/fusion_peer.py builds the same architecture in
# PyTorch (same parameter count, asserted), loads the same tensors and times the same loops with
# the same thread count. Both use Debian's libtorch 1.13 (the peer runs under /usr/bin/python3
# with python3-torch, not a pyenv python). Reported: median of ROUNDS x REPEATS runs of STEPS steps,
# and achieved GFLOP/s against the sgemm peak measured in the same run (bench/lib.sh, speed_table.py).
#
#   bash bench/fusion_speed.sh                 # all cores
#   THREADS=1 REPEATS=7 bash bench/fusion_speed.sh
#
# Environment: THREADS (default: nproc), STEPS (30), WARMUP (5), REPEATS (5), ROUNDS (3: processes per
#   side, alternating which side runs first; rates are the median of all ROUNDS x REPEATS runs, ratios the
#   median over rounds of braid / PyTorch within a round),
#   BRAID (default: build/apps/braid/braid, built with cmake + ninja when missing),
#   DATA (default: data/avmnist/manifest.jsonl, built when missing), OUT (default: a temp dir; kept).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DATA=${DATA:-$ROOT/data/avmnist/manifest.jsonl}
RECIPE=$ROOT/recipes/avmnist_late_fusion.yaml
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_fusion_speed.XXXXXX")}
mkdir -p "$OUT"

bench_setup
if [ ! -f "$DATA" ]; then
  say "building the avmnist dataset in $(dirname "$DATA")"
  "$BRAID" data build avmnist --out "$(dirname "$DATA")" --threads "$THREADS" >&2
fi

# name | --set arguments (the recipe's late/concat fusion needs none)
MODELS=(
  "late-fusion|"
  "tfn|model.fusion={name: tfn, dim: 16, out: 64}"
  "lmf|model.fusion={name: lmf, rank: 4, out: 64}"
)

say "threads $THREADS, steps $STEPS, warmup $WARMUP, repeats $REPEATS, rounds $ROUNDS; results in $OUT"
gemm_peak
NAMES=()
for entry in "${MODELS[@]}"; do
  name=${entry%%|*}
  set_arg=${entry#*|}
  sets=()
  [ -n "$set_arg" ] && sets=(--set "$set_arg")
  speed_pair "$name" "$RECIPE" "$DATA" "$ROOT/bench/peer/fusion_peer.py" "${sets[@]}"
  NAMES+=("$name")
done
speed_table "${NAMES[@]}"
machine_line
