#!/usr/bin/env bash
# Engine benchmark (issue 7, CPU part): in one run
#   1. the machine's sgemm peak (braid bench gemm, THREADS threads) and the OpenBLAS kernel setting;
#   2. braid vs PyTorch (Debian python3-torch, same libtorch 1.13) on the small CLIP of bench/clip_speed.sh
#      and on the AV-MNIST late-fusion model of bench/fusion_speed.sh: train steps/s, inference samples/s,
#      ratios and achieved GFLOP/s vs the peak (FLOPs counted by the PyTorch peers' profiler);
#   3. data-parallel scaling (c10d Gloo): `braid train recipes/emoji_late_fusion.yaml --nproc 2 --threads 1`
#      (per-rank batch 32) vs `--nproc 1 --threads 2` (batch 64): the same global batch, DP_STEPS steps,
#      steps/s from summary.json (`seconds`, the trainer's own clock) and from the wall clock of the command;
#      efficiency = 2-process rate / 1-process rate. DP_ROUNDS rounds alternate the order; medians reported.
# No GPU part here (none in the session that wrote this).
#
#   bash bench/engine.sh
#
# Environment: THREADS (nproc), STEPS/WARMUP/REPEATS/ROUNDS (CLIP: 3/1/5/2; AV-MNIST uses FUSION_STEPS 10,
#   FUSION_WARMUP 2), DP_STEPS (40), DP_ROUNDS (3), BRAID, OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/clip_speed.sh
source "$ROOT/bench/clip_speed.sh"   # lib.sh + clip_bench (its main part only runs when executed)
DP_STEPS=${DP_STEPS:-40}
DP_ROUNDS=${DP_ROUNDS:-3}
AV_DATA=$ROOT/data/avmnist/manifest.jsonl
EMOJI_DATA=$ROOT/data/emoji/manifest.jsonl

bench_setup
say "threads $THREADS; results in $OUT"
T0=$(date +%s)
gemm_peak
clip_bench
# AV-MNIST late fusion: same peer as bench/fusion_speed.sh, its step counts
if [ ! -f "$AV_DATA" ]; then "$BRAID" data build avmnist --out "$(dirname "$AV_DATA")" --threads "$THREADS" >&2; fi
(STEPS=${FUSION_STEPS:-10} WARMUP=${FUSION_WARMUP:-2}
 speed_pair avmnist-late-fusion "$ROOT/recipes/avmnist_late_fusion.yaml" "$AV_DATA" "$ROOT/bench/peer/fusion_peer.py")

dp_run() {  # nproc threads batch round
  local d="$OUT/dp_n$1_r$4" s e
  rm -rf "$d"
  say "== data parallel: --nproc $1 --threads $2, per-rank batch $3 (round $4)"
  s=$(date +%s.%N)
  "$BRAID" train "$ROOT/recipes/emoji_late_fusion.yaml" --data "$EMOJI_DATA" --nproc "$1" --threads "$2" \
    --set "train.max_steps=$DP_STEPS" --set "train.batch_size=$3" --out "$d" >"$d.log" 2>&1
  e=$(date +%s.%N)
  echo "$s $e" >"$d.wall"
}
for r in $(seq 1 "$DP_ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then dp_run 1 2 64 "$r"; dp_run 2 1 32 "$r"; else dp_run 2 1 32 "$r"; dp_run 1 2 64 "$r"; fi
done

echo "## braid vs PyTorch (CPU, $THREADS threads)"
echo
speed_table clip avmnist-late-fusion
echo
echo "## Data-parallel scaling (Gloo), recipes/emoji_late_fusion.yaml, $DP_STEPS steps, global batch 64"
echo
"$PY" - "$OUT" "$DP_ROUNDS" <<'PYEOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
res = {}
for n in (1, 2):
    tr, wall, gb = [], [], None
    for r in range(1, rounds + 1):
        d = os.path.join(out, f"dp_n{n}_r{r}")
        sm = json.load(open(os.path.join(d, "summary.json")))
        s, e = map(float, open(d + ".wall").read().split())
        tr.append(sm["steps"] / sm["seconds"]); wall.append(sm["steps"] / (e - s)); gb = sm["global_batch"]
        assert sm.get("world_size", 1) == n, (d, sm.get("world_size"))
    res[n] = (statistics.median(tr), statistics.median(wall), gb, tr)
print("| setup | global batch | steps/s (trainer clock) | steps/s (wall, incl. start-up + eval) | runs (trainer clock) |")
print("| --- | ---: | ---: | ---: | --- |")
for n, label in ((1, "1 process x 2 threads"), (2, "2 processes x 1 thread")):
    t, w, gb, runs = res[n]
    print(f"| {label} | {gb} | {t:.2f} | {w:.2f} | {', '.join(f'{x:.2f}' for x in runs)} |")
print()
print(f"scaling efficiency (2-process rate / 1-process rate): trainer clock {res[2][0] / res[1][0]:.2f}, "
      f"wall clock {res[2][1] / res[1][1]:.2f} (median of {rounds} runs each, alternating order)")
PYEOF
echo
machine_line
echo "engine.sh wall time: $(( $(date +%s) - T0 )) s"
