#!/usr/bin/env bash
# scripts/ave_transfer.sh — the Uni-Code AVE transfer (issue 20; docs/results/ave.md "Uni-Code AVE transfer"):
# per seed, a Uni-Code model pretrained on emoji (recipes/emoji_unicode.yaml), then two localizers on its frozen
# codes (recipes/ave_unicode_transfer.yaml): one trained on the visual codes of the AVE train split, one on the
# audio codes; each evaluated on the test split's codes of both modalities (`braid eval --set
# model.code_modality=...`): the cells v->v, v->a, a->a, a->v (train codes -> test codes). Then a markdown table,
# mean ± population std over the seeds, with the trivial baselines of `--task localize`.
#
#   bash scripts/ave_transfer.sh                        # seed 0
#   SEEDS="0 1 2" bash scripts/ave_transfer.sh          # runs that exist are not redone
#   TABLE_ONLY=1 SEEDS="0 1 2" bash scripts/ave_transfer.sh
#   INPUT=semantic SEEDS="0 1 2" bash scripts/ave_transfer.sh   # ablation: the semantic vectors before quantization
# The Uni-Code seed is the localizer's seed. Builds data/emoji and data/ave when their manifests are missing.
# Outputs under $OUT (default runs/ave-transfer): unicode_s<seed>/ (the Uni-Code run), image_s<seed>/ and
# audio_s<seed>/ (the localizers, named by the codes they were trained on), cells/<train>-<test>_s<seed>.json
# (the localize JSON of each cell), time.txt in each run, logs/, table.md; with INPUT=semantic the localizers
# and cells carry "-semantic" after the training modality (image-semantic_s0, ...) and the table is table-semantic.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
OUT=${OUT:-runs/ave-transfer}
AVE=${AVE:-data/ave}
EMOJI=${EMOJI:-data/emoji}
SEEDS=${SEEDS:-"0"}
THREADS=${THREADS:-1}
EXTRA=${EXTRA:-}             # extra arguments for every localizer `braid train`
TABLE_ONLY=${TABLE_ONLY:-}
INPUT=${INPUT:-codes}        # model.code_input: codes | semantic
TAG=$([[ "$INPUT" == codes ]] || echo "-$INPUT")

timed() {  # timed DIR CMD...: run CMD, write its wall seconds to DIR/time.txt
  local dir=$1 t0 t1
  shift
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  echo "$((t1 - t0))" > "$dir/time.txt"
}

if [[ -z "$TABLE_ONLY" ]]; then
  [[ -f "$EMOJI/manifest.jsonl" ]] || "$BRAID" data build emoji --out "$EMOJI"
  [[ -f "$AVE/manifest.jsonl" ]] || "$BRAID" data build ave --out "$AVE"
  mkdir -p "$OUT/logs" "$OUT/cells"
  for s in $SEEDS; do
    uni="$OUT/unicode_s$s"
    if [[ ! -f "$uni/model.pt" ]]; then
      rm -rf "$uni"
      echo "== Uni-Code seed $s"
      mkdir -p "$uni"
      timed "$uni" "$BRAID" train recipes/emoji_unicode.yaml --data "$EMOJI/manifest.jsonl" --out "$uni" --seed "$s" \
        --threads "$THREADS" > "$OUT/logs/unicode_s$s.train.log" 2>&1
    fi
    for m in image audio; do
      run="$OUT/${m}${TAG}_s$s"
      if [[ ! -f "$run/model.pt" ]]; then
        rm -rf "$run"
        echo "== localizer on $m codes, seed $s"
        mkdir -p "$run"
        # shellcheck disable=SC2086
        timed "$run" "$BRAID" train recipes/ave_unicode_transfer.yaml --data "$AVE/manifest.jsonl" --out "$run" \
          --seed "$s" --threads "$THREADS" --set "model.init_from=$uni" --set "model.code_modality=$m" \
          --set "model.code_input=$INPUT" $EXTRA > "$OUT/logs/${m}${TAG}_s$s.train.log" 2>&1
      fi
      for t in image audio; do
        name="${m}${TAG}-${t}_s$s"
        [[ -f "$OUT/cells/$name.json" ]] && continue
        "$BRAID" eval "$run" --data "$AVE/manifest.jsonl" --split test --task localize --threads "$THREADS" --json \
          --set "model.code_modality=$t" > "$OUT/logs/$name.eval.log" 2>&1
        tail -n 1 "$OUT/logs/$name.eval.log" > "$OUT/cells/$name.json"
      done
    done
  done
fi

python3 - "$OUT" "$SEEDS" "$TAG" > "$OUT/table$TAG.md" <<'PY'
import json, math, os, sys
out, seeds, tag = sys.argv[1], sys.argv[2].split(), sys.argv[3]
short = {"image": "v", "audio": "a"}

def ms(xs):  # mean ± population std
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return f"{m:.3f}"
    return f"{m:.3f} ± {math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)):.3f}"

cols = [("segment_accuracy", "segment acc"), ("event_segment_accuracy", "event segments"),
        ("background_accuracy", "background segments"), ("boundary_f1", "boundary F1 (±1)")]
print("| cell (train codes -> test codes) | seeds | " + " | ".join(c[1] for c in cols)
      + " | detection acc | detection F1 (±1) | localizer train s |")
print("|" + "---|" * (len(cols) + 5))
base = None
for tr, te in [("image", "image"), ("image", "audio"), ("audio", "audio"), ("audio", "image")]:
    rs = []
    for s in seeds:
        f = os.path.join(out, "cells", f"{tr}{tag}-{te}_s{s}.json")
        if os.path.exists(f):
            j = json.load(open(f))
            j["_time"] = float(open(os.path.join(out, f"{tr}{tag}_s{s}", "time.txt")).read())
            rs.append(j)
    if not rs:
        continue
    base = base or rs[0]
    print(f"| {short[tr]}->{short[te]} ({tr} -> {te}) | {len(rs)} | "
          + " | ".join(ms([r[k] for r in rs]) for k, _ in cols)
          + f" | {ms([r['detection']['segment_accuracy'] for r in rs])} | {ms([r['detection']['boundary_f1'] for r in rs])}"
          + f" | {sum(r['_time'] for r in rs) / len(rs):.0f} |")
if base:
    b = base["baseline_background"]
    print(f"| all background | — | {b['segment_accuracy']:.3f} | 0.000 | 1.000 | 0.000 | {b['segment_accuracy']:.3f} "
          f"| 0.000 | — |")
    p = base.get("baseline_position")
    if p:
        print(f"| position prior (train split) | — | {p['segment_accuracy']:.3f} | — | — | {p['boundary_f1']:.3f} | "
              f"{p['detection_segment_accuracy']:.3f} | {p['detection_boundary_f1']:.3f} | — |")
    print()
    print(f"Test split: {base['n']} sequences, {base['segments']} segments, {base['events']} events.")
PY
cat "$OUT/table$TAG.md"
