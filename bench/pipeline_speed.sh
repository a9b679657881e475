#!/usr/bin/env bash
# Data-pipeline throughput: braid's preprocessing vs a Python equivalent that does not use torch.
#
#   image: PNG decode + alpha composite + antialiased bilinear resize to 32x32 + normalize
#          (braid: stb_image + data/image.cpp; peer: PIL + numpy)
#   audio: WAV decode + windowed-sinc resample to 16 kHz + STFT + 64-band log-mel + normalize
#          (braid: libsndfile + data/audio.cpp; peer: `wave` + numpy)
#
# `braid bench pipeline` and bench/peer/pipeline_peer.py read the same files (the first LIMIT samples of the
# manifest that have the modality), make one untimed pass, then REPEATS timed passes; a rate is the median.
# Configurations: 1 worker with 1 thread on each side (braid --workers 1 --threads 1; the peer in one process
# with OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1), and 2 workers (braid: 2 decoding threads, each
# single-threaded as in the loader; the peer: a multiprocessing pool of 2). Each configuration runs ROUNDS
# times, alternating which side goes first; the ratio is the median over rounds of braid / peer of the two
# processes that ran back to back. Both sides also dump their first output and the script prints the largest
# difference, to show they compute the same thing.
#
#   bash bench/pipeline_speed.sh
#   LIMIT=1000 REPEATS=7 bash bench/pipeline_speed.sh
#
# Environment: BRAID (default build/apps/braid/braid), DATA (data/emoji/manifest.jsonl), LIMIT (400),
#   REPEATS (5), ROUNDS (3), MODALITIES ("image audio"), WORKERS ("1 2"), OUT (a temp dir; kept).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DATA=${DATA:-$ROOT/data/emoji/manifest.jsonl}
LIMIT=${LIMIT:-400}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-3}
MODALITIES=${MODALITIES:-image audio}
WORKERS=${WORKERS:-1 2}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_pipeline_speed.XXXXXX")}
mkdir -p "$OUT"

# the peer's interpreter: Debian's python3 with numpy and PIL (no torch); braid
need_py 'import numpy, PIL' python3-numpy python3-pil
need_braid bench pipeline
[ -f "$DATA" ] || { say "no manifest at $DATA (build it with: braid data build emoji --out $(dirname "$DATA"))"; exit 2; }

say "limit $LIMIT, repeats $REPEATS, rounds $ROUNDS; results in $OUT"
run_braid() {  # modality workers round
  say "== $1 workers $2 round $3: braid"
  "$BRAID" bench pipeline --data "$DATA" --modality "$1" --workers "$2" --threads 1 --limit "$LIMIT" \
    --repeats "$REPEATS" --dump "$OUT/$1.braid.npy" --json >"$OUT/$1.w$2.braid.$3.json"
}
run_peer() {  # modality workers round
  say "== $1 workers $2 round $3: python (numpy + PIL)"
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PY" "$ROOT/bench/peer/pipeline_peer.py" --data "$DATA" \
    --modality "$1" --workers "$2" --limit "$LIMIT" --repeats "$REPEATS" --dump "$OUT/$1.peer.npy" \
    >"$OUT/$1.w$2.peer.$3.json"
}
for m in $MODALITIES; do
  for w in $WORKERS; do
    for round in $(seq 1 "$ROUNDS"); do
      if [ $((round % 2)) -eq 1 ]; then run_braid "$m" "$w" "$round"; run_peer "$m" "$w" "$round"
      else run_peer "$m" "$w" "$round"; run_braid "$m" "$w" "$round"; fi
    done
  done
done

OMP_NUM_THREADS=1 "$PY" - "$OUT" "$ROUNDS" "$MODALITIES" "$WORKERS" <<'PYEOF'
import json, os, statistics, sys
import numpy as np
out, rounds, mods, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
print("| modality | workers | files | braid samples/s | python samples/s | ratio (braid / python) | max abs diff of the first output |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in mods:
    a, b = np.load(os.path.join(out, f"{m}.braid.npy")), np.load(os.path.join(out, f"{m}.peer.npy"))
    diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("nan")
    for w in workers:
        docs = {s: [json.load(open(os.path.join(out, f"{m}.w{w}.{s}.{r}.json"))) for r in range(1, rounds + 1)]
                for s in ("braid", "peer")}
        rate = {s: statistics.median(x for d in docs[s] for x in d["runs"]) for s in docs}
        ratio = statistics.median(db["samples_per_s"] / dp["samples_per_s"] for db, dp in zip(docs["braid"], docs["peer"]))
        shape = "x".join(map(str, a.shape)) if a.shape == b.shape else f"{a.shape} vs {b.shape}"
        print(f"| {m} | {w} | {docs['braid'][0]['samples']} | {rate['braid']:.0f} | {rate['peer']:.0f} | {ratio:.2f} | "
              f"{diff:.2e} ({shape}) |")
print()
print(f"rates: median of all runs ({rounds} processes per side x repeats); ratio: median over rounds of braid / python "
      "of the two processes that ran back to back; 1 worker = 1 thread on each side")
PYEOF
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
