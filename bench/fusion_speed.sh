#!/usr/bin/env bash
# braid vs PyTorch speed on AV-MNIST fusion models (late/concat fusion, TFN, LMF).
#
# For each model, `braid bench speed` builds recipes/avmnist_late_fusion.yaml (with the fusion
# swapped by --set), takes the first training batch, dumps it (.npy + model.json) and times
# training steps and inference; bench/peer/fusion_peer.py builds the same architecture in
# PyTorch (same parameter count, asserted), loads the same tensors and times the same loops with
# the same thread count. Both use Debian's libtorch 1.13 (the peer runs under /usr/bin/python3
# with python3-torch, not a pyenv python). Reported: median of ROUNDS x REPEATS runs of STEPS steps.
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
PY=/usr/bin/python3
BRAID=${BRAID:-$ROOT/build/apps/braid/braid}
DATA=${DATA:-$ROOT/data/avmnist/manifest.jsonl}
RECIPE=$ROOT/recipes/avmnist_late_fusion.yaml
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_fusion_speed.XXXXXX")}
mkdir -p "$OUT"

say() { printf '%s\n' "$*" >&2; }

# ---- PyTorch peer's interpreter: Debian's python3 with python3-torch / numpy / yaml ----
if ! "$PY" -c 'import torch, numpy, yaml' 2>/dev/null; then
  say "installing python3-torch python3-numpy python3-yaml with apt (for $PY)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch python3-numpy python3-yaml
fi

# ---- braid ----
if ! "$BRAID" bench speed --help >/dev/null 2>&1; then
  say "building braid in $ROOT/build"
  if [ -f "$ROOT/build/CMakeCache.txt" ]; then cmake "$ROOT/build" >&2
  else cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2; fi
  cmake --build "$ROOT/build" --target braid >&2
  BRAID=$ROOT/build/apps/braid/braid
fi

# ---- data ----
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
run_braid() {  # name, round, --set arguments...
  local name=$1 round=$2; shift 2
  say "== $name round $round: braid"
  "$BRAID" bench speed "$RECIPE" --data "$DATA" "$@" --threads "$THREADS" --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" --dump "$OUT/$name" --json >"$OUT/$name.braid.$round.json"
}
run_peer() {  # name, round
  say "== $1 round $2: PyTorch"
  "$PY" "$ROOT/bench/peer/fusion_peer.py" "$OUT/$1" --threads "$THREADS" --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" >"$OUT/$1.torch.$2.json"
}
for entry in "${MODELS[@]}"; do
  name=${entry%%|*}
  set_arg=${entry#*|}
  sets=()
  [ -n "$set_arg" ] && sets=(--set "$set_arg")
  # Rounds alternate the order (braid first, then PyTorch first, ...) so that a change in the
  # machine's load during the run does not always favour the same side. The peer needs the dump
  # of the first braid run, so round 1 always starts with braid.
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
      run_braid "$name" "$round" "${sets[@]}"
      run_peer "$name" "$round"
    else
      run_peer "$name" "$round"
      run_braid "$name" "$round" "${sets[@]}"
    fi
  done
done

# ---- table ----
NAMES=""
for entry in "${MODELS[@]}"; do NAMES="$NAMES ${entry%%|*}"; done
"$PY" - "$OUT" "$ROUNDS" $NAMES <<'EOF'
import json, os, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
KEYS = ("train_steps_per_s", "infer_samples_per_s_b64", "infer_samples_per_s_b1")

def collect(name, side):
    docs = [json.load(open(os.path.join(out, f"{name}.{side}.{r}.json"))) for r in range(1, rounds + 1)]
    runs = [run for d in docs for run in d["runs"]]
    agg = {k: statistics.median(run[k] for run in runs) for k in KEYS}
    agg["rounds"] = [{k: d[k] for k in KEYS} for d in docs]  # each process's own median
    agg.update({k: docs[0][k] for k in ("parameters", "threads", "batch_size", "steps")})
    agg["n"] = len(runs)
    agg["torch"] = docs[0].get("torch", "")
    return agg

def ratio(b, t, k):
    # braid and PyTorch of one round ran back to back; the median of the per-round ratios is
    # robust to load changes between rounds, which the ratio of pooled medians is not.
    return statistics.median(rb[k] / rt[k] for rb, rt in zip(b["rounds"], t["rounds"]))

rows = []
for n in names:
    b, t = collect(n, "braid"), collect(n, "torch")
    if b["parameters"] != t["parameters"]:
        sys.exit(f"{n}: braid has {b['parameters']} parameters, the PyTorch peer {t['parameters']}")
    rows.append((n, b, t))
B = rows[0][1]["batch_size"]
print(f"| model | parameters | braid train steps/s | PyTorch train steps/s | ratio | braid infer/s (B={B}) | "
      f"PyTorch infer/s (B={B}) | ratio | braid infer/s (B=1) | PyTorch infer/s (B=1) | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, b, t in rows:
    cells = [n, f"{b['parameters']:,}"]
    for k, fmt in zip(KEYS, ("{:.1f}", "{:.0f}", "{:.0f}")):
        cells += [fmt.format(b[k]), fmt.format(t[k]), f"{ratio(b, t, k):.2f}"]
    print("| " + " | ".join(cells) + " |")
b0, t0 = rows[0][1], rows[0][2]
print()
print(f"rates: median of {b0['n']} runs ({rounds} processes per side, {b0['n'] // rounds} repeats of {b0['steps']} steps each); "
      f"ratio = braid / PyTorch (> 1: braid is faster), the median over rounds of the ratio of the two processes that "
      f"ran back to back; threads: braid {b0['threads']}, PyTorch {t0['threads']}; PyTorch {t0['torch']}")
EOF
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} (BLAS: $(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo '?'))"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
