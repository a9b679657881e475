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
#   4. precision (issue 19, CPU bf16): braid with `precision: auto` (bf16 autocast on CPUs with native bf16
#      GEMMs, avx512_bf16 / amx_bf16; fp32 elsewhere) vs PyTorch fp32 (its default) and vs PyTorch under CPU
#      autocast bf16, on the same two models: PREC_ROUNDS rounds of three processes in rotating order;
#      ratio = median over rounds of braid / PyTorch within the round; rates are medians of all repeats.
# No GPU part here (none in the session that wrote this).
#
#   bash bench/engine.sh
#   PARTS=precision bash bench/engine.sh      # only part 4
#
# Environment: PARTS ("speed dp precision": which parts run), THREADS (nproc), STEPS/WARMUP/REPEATS/ROUNDS
#   (CLIP: 3/1/5/2; AV-MNIST uses FUSION_STEPS 10, FUSION_WARMUP 2), DP_STEPS (40), DP_ROUNDS (3),
#   PREC_ROUNDS (3), AV_DATA (data/avmnist/manifest.jsonl, built when missing), BRAID, OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/clip_speed.sh
source "$ROOT/bench/clip_speed.sh"   # lib.sh + clip_bench (its main part only runs when executed)
DP_STEPS=${DP_STEPS:-40}
DP_ROUNDS=${DP_ROUNDS:-3}
AV_DATA=${AV_DATA:-$ROOT/data/avmnist/manifest.jsonl}
EMOJI_DATA=$ROOT/data/emoji/manifest.jsonl

PARTS=${PARTS:-speed dp precision}
PREC_ROUNDS=${PREC_ROUNDS:-3}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

bench_setup
say "threads $THREADS; parts: $PARTS; results in $OUT"
T0=$(date +%s)
if part speed || part precision; then
  if [ ! -f "$AV_DATA" ]; then "$BRAID" data build avmnist --out "$(dirname "$AV_DATA")" --threads "$THREADS" >&2; fi
fi
if part speed; then
  gemm_peak
  clip_bench
  # AV-MNIST late fusion: same peer as bench/fusion_speed.sh, its step counts
  (STEPS=${FUSION_STEPS:-10} WARMUP=${FUSION_WARMUP:-2}
   speed_pair avmnist-late-fusion "$ROOT/recipes/avmnist_late_fusion.yaml" "$AV_DATA" "$ROOT/bench/peer/fusion_peer.py")
fi

_run_peer_prec() {  # NAME ROUND PEER PRECISION -> $OUT/NAME.torch_PRECISION.ROUND.json (the dump of braid's run)
  local name=$1 round=$2 peer=$3 prec=$4
  say "== $name round $round: PyTorch $prec"
  "$PY" "$peer" "$OUT/$name" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" --repeats "$REPEATS" \
    --precision "$prec" >"$OUT/$name.torch_$prec.$round.json.tmp"
  mv "$OUT/$name.torch_$prec.$round.json.tmp" "$OUT/$name.torch_$prec.$round.json"
}
precision_trio() {  # NAME RECIPE DATA PEER [--set ...]: braid (precision auto), PyTorch fp32, PyTorch bf16
  local name=$1 recipe=$2 data=$3 peer=$4; shift 4
  local round side order
  for round in $(seq 1 "$PREC_ROUNDS"); do
    case $((round % 3)) in 1) order="braid fp32 bf16" ;; 2) order="fp32 bf16 braid" ;; *) order="bf16 braid fp32" ;; esac
    for side in $order; do
      if [ "$side" = braid ]; then _run_braid "$name" "$round" "$recipe" "$data" "$@" --set precision=auto
      else _run_peer_prec "$name" "$round" "$peer" "$side"; fi
    done
  done
}
if part precision; then
  precision_trio clip-auto "$CLIP_RECIPE" "$CLIP_DATA" "$ROOT/bench/peer/clip_peer.py" "${CLIP_SETS[@]}"
  (STEPS=${FUSION_STEPS:-10} WARMUP=${FUSION_WARMUP:-2}
   precision_trio avmnist-auto "$ROOT/recipes/avmnist_late_fusion.yaml" "$AV_DATA" "$ROOT/bench/peer/fusion_peer.py")
fi

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
if part dp; then
  for r in $(seq 1 "$DP_ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then dp_run 1 2 64 "$r"; dp_run 2 1 32 "$r"; else dp_run 2 1 32 "$r"; dp_run 1 2 64 "$r"; fi
  done
fi

if part speed; then
  echo "## braid vs PyTorch (CPU, $THREADS threads)"
  echo
  speed_table clip avmnist-late-fusion
  echo
fi
if part precision; then
  echo "## braid precision auto vs PyTorch fp32 and PyTorch autocast bf16 (CPU, $THREADS threads)"
  echo
  "$PY" "$ROOT/bench/peer/precision_table.py" "$OUT" "$PREC_ROUNDS" clip-auto avmnist-auto
  echo
  echo "CPU bf16 flags (/proc/cpuinfo): $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512_bf16|amx_bf16|amx_tile)$' | tr '\n' ' ')"
  echo
fi
if part dp; then
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
fi
machine_line
echo "engine.sh wall time: $(( $(date +%s) - T0 )) s"
