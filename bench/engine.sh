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
#   5. ort (issue 19, inference vs ONNX Runtime): the bench CLIP's image and text towers (model as in 2; the text
#      tower is timed by putting text first in model.modalities, which DualTower::forward embeds) through
#      `braid bench speed --infer-only` (as it is, and with --prepack: pre-packed oneDNN weights, nn/prepack.h), through
#      the PyTorch peer (clip_peer.py --infer-only) and through ONNX
#      Runtime 1.19.2 (npm onnxruntime-node, CPU; bench/peer/ort_tower_bench.js) on the ONNX files that
#      bench/peer/clip_onnx.py exports from the peer (same architecture and names; ORT's embeddings of the dumped
#      batch are checked against the peer's first). Same batch (B and B=1), same THREADS, same loop; ORT_ROUNDS
#      rounds of the three sides in rotating order; ratios = median over rounds within the round.
#      INT8=1 adds `braid bench speed --precision int8` (int8 oneDNN Linear layers, VNNI CPUs; nn/prepack.h) right
#      after braid --prepack in each round, and a table of int8 / fp32-packed and int8 / ORT.
#      Contention (ORT_BUSY=1): each side again while a busy BUSY_THREADS-thread process (a PyTorch matmul loop)
#      runs, then quiet right after, for braid as it is (its default: passive OpenMP waits, apps/braid/main.cpp),
#      braid --prepack, braid with libgomp's own default (GOMP_SPINCOUNT=300000: what braid ran with before),
#      braid with GOMP_SPINCOUNT=BUSY_SPINCOUNT, and ORT; slowdown = quiet rate / busy rate.
#   6. fused (issue 19, fused CPU kernels): `braid bench speed` on the bench CLIP with and without --fused (the
#      Transformer block's residual + LayerNorm and bias + GELU as one pass each, nn/fused.h), FUSED_ROUNDS
#      rounds alternating the order; train steps/s and inference samples/s, ratio = fused / unfused per round.
# No GPU part here (none in the session that wrote this).
#
#   bash bench/engine.sh
#   PARTS=precision bash bench/engine.sh      # only part 4
#   PARTS=ort THREADS=2 bash bench/engine.sh  # only part 5
#   PARTS=fused THREADS=1 bash bench/engine.sh  # only part 6
#
# Environment: PARTS ("speed dp precision ort fused": which parts run), THREADS (nproc), STEPS/WARMUP/REPEATS/ROUNDS
#   (CLIP: 3/1/5/2; AV-MNIST uses FUSION_STEPS 10, FUSION_WARMUP 2), DP_STEPS (40), DP_ROUNDS (3),
#   PREC_ROUNDS (3), PREC_MODELS ("clip avmnist": the models part 4 times),
#   AV_DATA (data/avmnist/manifest.jsonl, built when missing), BRAID, OUT;
#   part 5: ORT_ROUNDS (3), ORT_STEPS (10: batches per repeat; 4x as many at B=1), ORT_DIR (where npm installs
#   onnxruntime-node, ~/.cache/braid/onnxruntime-node-1.19.2; installed there when missing, never at braid run
#   time), ORT_BUSY (1), BUSY_THREADS (2), BUSY_SPINCOUNT (10000), BUSY_LIMIT (240: seconds per contended process),
#   BUSY_REPEATS (3: repeats of the contended and quiet runs), INT8 (0; 1: the int8 side too); part 6: FUSED_ROUNDS (4).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/clip_speed.sh
source "$ROOT/bench/clip_speed.sh"   # lib.sh + clip_bench (its main part only runs when executed)
DP_STEPS=${DP_STEPS:-40}
DP_ROUNDS=${DP_ROUNDS:-3}
AV_DATA=${AV_DATA:-$ROOT/data/avmnist/manifest.jsonl}
EMOJI_DATA=$ROOT/data/emoji/manifest.jsonl

PARTS=${PARTS:-speed dp precision ort fused}
PREC_ROUNDS=${PREC_ROUNDS:-3}
PREC_MODELS=${PREC_MODELS:-clip avmnist}
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
prec_model() { case " $PREC_MODELS " in *" $1 "*) return 0 ;; esac; return 1; }
PREC_NAMES=()
if part precision; then
  if prec_model clip; then
    precision_trio clip-auto "$CLIP_RECIPE" "$CLIP_DATA" "$ROOT/bench/peer/clip_peer.py" "${CLIP_SETS[@]}"
    PREC_NAMES+=(clip-auto)
  fi
  if prec_model avmnist; then
    (STEPS=${FUSION_STEPS:-10} WARMUP=${FUSION_WARMUP:-2}
     precision_trio avmnist-auto "$ROOT/recipes/avmnist_late_fusion.yaml" "$AV_DATA" "$ROOT/bench/peer/fusion_peer.py")
    PREC_NAMES+=(avmnist-auto)
  fi
fi

ORT_VERSION=1.19.2
ORT_DIR=${ORT_DIR:-$HOME/.cache/braid/onnxruntime-node-$ORT_VERSION}
ORT_ROUNDS=${ORT_ROUNDS:-3}
ORT_STEPS=${ORT_STEPS:-10}
ORT_BUSY=${ORT_BUSY:-1}
BUSY_THREADS=${BUSY_THREADS:-2}
BUSY_SPINCOUNT=${BUSY_SPINCOUNT:-10000}
BUSY_LIMIT=${BUSY_LIMIT:-240}
BUSY_REPEATS=${BUSY_REPEATS:-3}
INT8=${INT8:-0}
ort_setup() {  # onnxruntime-node (pinned) into ORT_DIR with npm, once
  if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
    command -v npm >/dev/null || { say "part ort needs node and npm (apt-get install nodejs npm)"; exit 2; }
    say "installing onnxruntime-node@$ORT_VERSION into $ORT_DIR (npm, --ignore-scripts: the CPU library only)"
    mkdir -p "$ORT_DIR"
    (cd "$ORT_DIR" && npm install --no-audit --no-fund --no-save --loglevel=error --ignore-scripts \
      "onnxruntime-node@$ORT_VERSION" >&2)
  fi
  export NODE_PATH="$ORT_DIR/node_modules"
}
# the tower's modality first in model.modalities: DualTower::forward embeds the first one the batch has
ort_sets() { if [ "$1" = text ]; then echo 'model.modalities=[text, image]'; else echo 'model.modalities=[image, text]'; fi; }
# ort_side TOWER SIDE FILE [ENV...]: one inference timing of TOWER by SIDE (braid | torch | ort) into FILE (JSON);
# LIMIT: a time limit in seconds (none when empty)
ort_side() {
  local tower=$1 side=$2 file=$3; shift 3
  local run=(${LIMIT:+timeout "$LIMIT"} env "$@")
  case $side in
    braid|braidk|braidq) local extra=(); [ "$side" = braidk ] && extra=(--prepack); [ "$side" = braidq ] && extra=(--precision int8)
           "${run[@]}" "$BRAID" bench speed "$CLIP_RECIPE" --data "$CLIP_DATA" "${CLIP_SETS[@]}" --set "$(ort_sets "$tower")" \
             --threads "$THREADS" --steps "$ORT_STEPS" --repeats "$REPEATS" --infer-only "${extra[@]}" \
             --json >"$file.tmp" ;;
    torch) "${run[@]}" "$PY" "$ROOT/bench/peer/clip_peer.py" "$OUT/ort-$tower" --threads "$THREADS" --steps "$ORT_STEPS" \
             --repeats "$REPEATS" --infer-only >"$file.tmp" ;;
    ort) "${run[@]}" node "$ROOT/bench/peer/ort_tower_bench.js" "$OUT/onnx" "$THREADS" "$ORT_STEPS" "$REPEATS" "$tower" \
           >"$file.tmp" ;;
  esac && mv "$file.tmp" "$file"
}
busy_start() {  # a busy BUSY_THREADS-thread process (PyTorch matmuls) in the background; BUSY_PID
  "$PY" -c "import torch
torch.set_num_threads($BUSY_THREADS)
a = torch.randn(1024, 1024)
while True:
    a @ a" &
  BUSY_PID=$!
  sleep 2
}
ort_part() {
  ort_setup
  local tower round side order variant
  for tower in image text; do  # the dumped batch + the peer's ONNX export of this tower (both towers each time)
    "$BRAID" bench speed "$CLIP_RECIPE" --data "$CLIP_DATA" "${CLIP_SETS[@]}" --set "$(ort_sets "$tower")" \
      --threads "$THREADS" --steps 1 --repeats 1 --infer-only --dump "$OUT/ort-$tower" --json >/dev/null
  done
  say "== exporting the towers to ONNX ($OUT/onnx)"
  "$PY" "$ROOT/bench/peer/clip_onnx.py" "$OUT/ort-image" "$OUT/onnx" 2> >(grep -v -i warn >&2)
  for round in $(seq 1 "$ORT_ROUNDS"); do
    case $((round % 3)) in 1) order="braid torch ort" ;; 2) order="torch ort braid" ;; *) order="ort braid torch" ;; esac
    for tower in image text; do
      for side in $order; do
        say "== ort part, round $round: $tower tower, $side"
        if [ "$side" = braid ]; then  # braid as it is, then with pre-packed weights, back to back
          ort_side "$tower" braid "$OUT/ort.$tower.braid.$round.json"
          ort_side "$tower" braidk "$OUT/ort.$tower.braidk.$round.json"
          if [ "$INT8" = 1 ]; then ort_side "$tower" braidq "$OUT/ort.$tower.braidq.$round.json"; fi
        else ort_side "$tower" "$side" "$OUT/ort.$tower.$side.$round.json"; fi
      done
    done
  done
  [ "$ORT_BUSY" = 1 ] || return 0
  for tower in image text; do
    for variant in braid braid-prepack braid-gomp braid-spin ort; do
      local envs=() side=${variant%%-*}
      case $variant in
        braid-prepack) side=braidk ;;
        braid-gomp) envs=(GOMP_SPINCOUNT=300000) ;;
        braid-spin) envs=(GOMP_SPINCOUNT="$BUSY_SPINCOUNT") ;;
      esac
      say "== contention: $tower tower, $variant, with a busy $BUSY_THREADS-thread process"
      busy_start
      BUSY_LOAD=$(cut -d' ' -f1 /proc/loadavg)
      REPEATS=$BUSY_REPEATS LIMIT=$BUSY_LIMIT ort_side "$tower" "$side" "$OUT/busy.$tower.$variant.busy.json" "${envs[@]}" ||
        say "   ($variant under contention: no result within BUSY_LIMIT=$BUSY_LIMIT s)"
      kill "$BUSY_PID"; wait "$BUSY_PID" 2>/dev/null || true
      echo "$BUSY_LOAD" >"$OUT/busy.$tower.$variant.load"
      say "== contention: $tower tower, $variant, quiet"
      REPEATS=$BUSY_REPEATS ort_side "$tower" "$side" "$OUT/busy.$tower.$variant.quiet.json" "${envs[@]}"
    done
  done
}
if part ort; then
  ort_part
fi

FUSED_ROUNDS=${FUSED_ROUNDS:-4}
fused_run() {  # plain|fused ROUND
  say "== fused kernels: $1, round $2"
  local flag=(); [ "$1" = fused ] && flag=(--fused)
  "$BRAID" bench speed "$CLIP_RECIPE" --data "$CLIP_DATA" "${CLIP_SETS[@]}" --threads "$THREADS" --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" "${flag[@]}" --json >"$OUT/fused.$1.$2.json"
}
if part fused; then
  for r in $(seq 1 "$FUSED_ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then fused_run plain "$r"; fused_run fused "$r"; else fused_run fused "$r"; fused_run plain "$r"; fi
  done
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
  "$PY" "$ROOT/bench/peer/precision_table.py" "$OUT" "$PREC_ROUNDS" "${PREC_NAMES[@]}"
  echo
  echo "CPU bf16 flags (/proc/cpuinfo): $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512_bf16|amx_bf16|amx_tile)$' | tr '\n' ' ')"
  echo
fi
if part ort; then
  echo "## CPU inference: braid vs PyTorch vs ONNX Runtime $ORT_VERSION (bench CLIP towers, $THREADS threads)"
  echo
  "$PY" "$ROOT/bench/peer/ort_table.py" "$OUT" "$ORT_ROUNDS" "$ORT_BUSY" "$BUSY_THREADS" "$BUSY_SPINCOUNT"
  echo
fi
if part fused; then
  echo "## Fused CPU kernels (braid bench speed --fused vs without, bench CLIP, $THREADS threads)"
  echo
  "$PY" - "$OUT" "$FUSED_ROUNDS" <<'PYEOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
KEYS = (("train_steps_per_s", "train steps/s", "{:.3f}"), ("infer_samples_per_s_b64", "infer samples/s (B)", "{:.1f}"),
        ("infer_samples_per_s_b1", "infer samples/s (B=1)", "{:.1f}"))
docs = {s: [json.load(open(os.path.join(out, f"fused.{s}.{r}.json"))) for r in range(1, rounds + 1)] for s in ("plain", "fused")}
assert all(d["fused"] for d in docs["fused"]) and not any(d["fused"] for d in docs["plain"])
print("| figure | unfused | fused | fused / unfused (median over rounds) | per-round ratios |")
print("| --- | ---: | ---: | ---: | --- |")
for k, label, fmt in KEYS:
    med = {s: statistics.median(run[k] for d in docs[s] for run in d["runs"]) for s in docs}
    per = [f[k] / p[k] for f, p in zip(docs["fused"], docs["plain"])]
    print(f"| {label} | {fmt.format(med['plain'])} | {fmt.format(med['fused'])} | {statistics.median(per):.3f} | "
          f"{', '.join(f'{x:.3f}' for x in per)} |")
d0 = docs["plain"][0]
print()
print(f"rates: median of {rounds} processes x {d0['repeats']} repeats per side ({d0['steps']} steps or batches each); "
      f"B = {d0['batch_size']}, threads {d0['threads']}, {d0['parameters']:,} parameters")
PYEOF
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
