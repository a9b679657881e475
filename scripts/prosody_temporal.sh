#!/usr/bin/env bash
# scripts/prosody_temporal.sh — the temporal fusions (MulT, MFN, MCTN: recipes/prosody_{mult,mfn,mctn}.yaml)
# beside the unimodal models, concat and late fusion on `prosody` (arousal / valence regression),
# through `braid bench fusion` with recipes/prosody_fusion.yaml as the base (its data, schedule and
# CCC loss for every method), then the per-target test CCC of every run (`braid eval --json`,
# ccc_per_dim) as the markdown table of docs/results/fusion_prosody.md.
#
#   bash scripts/prosody_temporal.sh                       # seeds 0..SEEDS-1 (default 3)
#   SEEDS=1 bash scripts/prosody_temporal.sh               # seed 0 only; a later SEEDS=3 keeps its runs
#   TABLE_ONLY=1 bash scripts/prosody_temporal.sh          # the table of what $OUT holds
#
# Outputs: $OUT (default runs/prosody_temporal)/ — the bench's results.md / results.json / runs/,
# eval/<method>_s<seed>.json and table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
DATA=${DATA:-data/prosody/manifest.jsonl}
OUT=${OUT:-runs/prosody_temporal}
SEEDS=${SEEDS:-3}
METHODS=${METHODS:-uni:audio,uni:text,concat,late_mean,mult,mfn,mctn}
EXTRA=${EXTRA:-}   # e.g. "--set train.epochs=8" (every method)
TABLE_ONLY=${TABLE_ONLY:-}

mkdir -p "$OUT"
if [[ -z "$TABLE_ONLY" ]]; then
  [[ -f "$DATA" ]] || "$BRAID" data build prosody --out "$(dirname "$DATA")"
  # shellcheck disable=SC2086
  "$BRAID" bench fusion --recipe recipes/prosody_fusion.yaml --data "$DATA" --methods "$METHODS" \
    --seeds "$SEEDS" --threads 1 --jobs 1 --out "$OUT" $EXTRA > "$OUT.bench.log" 2>&1 || {
    tail -n 5 "$OUT.bench.log" >&2; exit 1; }
fi
mkdir -p "$OUT/eval"
for run in "$OUT"/runs/*/seed*; do
  [[ -f "$run/summary.json" ]] || continue
  m=$(basename "$(dirname "$run")"); s=${run##*/seed}
  e="$OUT/eval/${m}_s$s.json"
  [[ -s "$e" ]] && continue
  "$BRAID" eval "$run" --data "$DATA" --split test --threads 1 --json 2> /dev/null | tail -n 1 > "$e"
done

/usr/bin/python3 - "$OUT" "$METHODS" > "$OUT/table.md" <<'PY'
import glob, json, math, os, sys
out, methods = sys.argv[1], sys.argv[2].split(",")
def ms(xs):  # mean ± population std
    m = sum(xs) / len(xs)
    return f"{m:.3f} ± {math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)):.3f}" if len(xs) > 1 else f"{m:.3f}"
print("| method | seeds | CCC arousal | CCC valence | CCC mean |")
print("|---|---:|---:|---:|---:|")
for m in methods:
    d = m.replace(":", "_")
    rows = []
    for f in sorted(glob.glob(os.path.join(out, "eval", f"{d}_s*.json"))):
        j = json.load(open(f))
        rows.append(j["ccc_per_dim"] + [j["ccc"]])
    if not rows: continue
    cols = list(zip(*rows))
    print(f"| {m} | {len(rows)} | " + " | ".join(ms(list(c)) for c in cols) + " |")
PY
cat "$OUT/table.md"
