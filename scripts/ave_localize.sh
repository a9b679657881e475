#!/usr/bin/env bash
# scripts/ave_localize.sh — audio-visual event localization (issue 20) on `braid data build ave`: the
# ave_localizer recipe with both modalities, each modality alone and without the GRU, x seeds;
# `braid train` + `braid eval --task localize --json` on the test split, then a markdown table
# (docs/results/ave.md).
#
#   bash scripts/ave_localize.sh                            # variants fused image audio nogru, seed 0
#   SEEDS="0 1 2" VARIANTS="fused" bash scripts/ave_localize.sh
#   EXTRA="--set train.epochs=2" bash scripts/ave_localize.sh   # extra arguments for every `braid train`
#   TABLE_ONLY=1 SEEDS="0 1 2" bash scripts/ave_localize.sh      # the table of the runs that exist, no training
# Builds $DATA (default data/ave) when its manifest is missing. Outputs: $OUT (default runs/ave)/<variant>_s<seed>/
# (the run, localize.json, time.txt), $OUT/logs/ and $OUT/table.md. Runs whose localize.json exists are not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
OUT=${OUT:-runs/ave}
DATA_DIR=${DATA_DIR:-data/ave}
RECIPE=${RECIPE:-recipes/ave_localize.yaml}
SEEDS=${SEEDS:-"0"}
VARIANTS=${VARIANTS:-"fused image audio nogru"}
EXTRA=${EXTRA:-}
THREADS=${THREADS:-2}
TABLE_ONLY=${TABLE_ONLY:-}
DATA="$DATA_DIR/manifest.jsonl"

sets() {
  case "$1" in
    fused) echo "" ;;
    image) echo "--set model.modalities=[image]" ;;
    audio) echo "--set model.modalities=[audio]" ;;
    nogru) echo "--set model.temporal=none" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

[[ -n "$TABLE_ONLY" || -f "$DATA" ]] || "$BRAID" data build ave --out "$DATA_DIR" --threads "$THREADS"
mkdir -p "$OUT/logs"
for v in $VARIANTS; do
  [[ -n "$TABLE_ONLY" ]] && break
  for s in $SEEDS; do
    run="$OUT/${v}_s$s"
    [[ -f "$run/localize.json" ]] && continue
    rm -rf "$run"
    echo "== $v seed $s"
    t0=$(date +%s)
    # shellcheck disable=SC2046,SC2086
    "$BRAID" train "$RECIPE" --data "$DATA" --out "$run" --seed "$s" --threads "$THREADS" $(sets "$v") $EXTRA \
      > "$OUT/logs/${v}_s$s.train.log" 2>&1
    t1=$(date +%s)
    "$BRAID" eval "$run" --data "$DATA" --split test --task localize --threads "$THREADS" --json \
      > "$OUT/logs/${v}_s$s.eval.log" 2>&1
    tail -n 1 "$OUT/logs/${v}_s$s.eval.log" > "$run/localize.json"
    echo "$((t1 - t0))" > "$run/time.txt"
    echo "   train $((t1 - t0)) s"
  done
done

python3 - "$OUT" "$VARIANTS" "$SEEDS" > "$OUT/table.md" <<'PY'
import json, math, os, sys
out, variants, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def ms(xs):
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return f"{m:.3f}"
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return f"{m:.3f} ± {sd:.3f}"

cols = [("segment_accuracy", "segment acc"), ("event_segment_accuracy", "event segments"),
        ("background_accuracy", "background segments"), ("boundary_f1", "boundary F1 (±1)"),
        ("boundary_f1_exact", "boundary F1 (exact)")]
print("| model | seeds | " + " | ".join(c[1] for c in cols) + " | detection acc | detection F1 (±1) | train s |")
print("|" + "---|" * (len(cols) + 5))
base = None
for v in variants:
    rs = []
    for s in seeds:
        d = os.path.join(out, f"{v}_s{s}")
        f = os.path.join(d, "localize.json")
        if os.path.exists(f):
            j = json.load(open(f))
            j["_time"] = float(open(os.path.join(d, "time.txt")).read())
            rs.append(j)
    if not rs:
        continue
    base = base or rs[0]
    print(f"| {v} | {len(rs)} | " + " | ".join(ms([r[k] for r in rs]) for k, _ in cols)
          + f" | {ms([r['detection']['segment_accuracy'] for r in rs])} | {ms([r['detection']['boundary_f1'] for r in rs])}"
          + f" | {sum(r['_time'] for r in rs) / len(rs):.0f} |")
if base:
    b = base["baseline_background"]
    print(f"| all background | — | {b['segment_accuracy']:.3f} | 0.000 | 1.000 | 0.000 | 0.000 | "
          f"{b['segment_accuracy']:.3f} | 0.000 | — |")
    p = base.get("baseline_position")
    if p:
        print(f"| position prior (train split) | — | {p['segment_accuracy']:.3f} | — | — | {p['boundary_f1']:.3f} | — | "
              f"{p['detection_segment_accuracy']:.3f} | {p['detection_boundary_f1']:.3f} | — |")
    print()
    print(f"Test split: {base['n']} sequences, {base['segments']} segments, {base['events']} events.")
PY
cat "$OUT/table.md"
