#!/usr/bin/env bash
# scripts/style_shift.sh — "fusion that never hurts" (issue 20): emoji classifiers trained on ONE
# image style (Google) and scored per condition — clean (Google test), held-out style (Twitter
# test), and each modality missing — for every unimodal model and the fused ones; then a markdown
# table, fused vs the best unimodal model available in each condition (docs/results/fusion_style_shift.md).
#
#   bash scripts/style_shift.sh                                   # seed 0, every variant
#   SEEDS="0 1 2" bash scripts/style_shift.sh
#   VARIANTS="text conf" EXTRA="--set train.epochs=2" bash scripts/style_shift.sh
#   TABLE_ONLY=1 SEEDS="0 1 2" bash scripts/style_shift.sh      # the table of what $OUT holds, no training
#
# The conditions are manifests written by `braid data filter` from $DATA (no data copied; paths
# re-based): $OUT/m/styleA.jsonl (every split Google: train, val and the clean test),
# styleB.jsonl (Twitter; only its test split is scored), and styleA_no<m> / styleB_no<m> (the same
# without modality m). Variants: text, image, audio (unimodal, recipes/emoji_style_shift.yaml with
# model.modalities=[m]); concat (the quickstart's feature-level fusion, same recipe); concat_md
# (concat with modality_dropout 0.3); conf (recipes/emoji_style_shift_conf.yaml: late_conf, the
# confidence-weighted product of experts, trained jointly with aux_heads and modality_dropout);
# stack (the same fusion over the unimodal runs' encoders of the same seed, loaded by
# model.init_from and frozen: only the expert heads train, so each expert is as good as its
# unimodal model; needs text, image and audio first); stack_p0 (stack with power 0: an unweighted
# product of experts, to isolate the confidence weighting); image_aug (the image model trained with
# flips, shifts of up to 3 px and grayscale copies: model.encoders.image.augment) and stack_aug (stack
# over image_aug's encoder instead of image's); stack_cal and stack_aug_cal (stack and stack_aug with
# model.fusion.calibrate=temperature: each expert's temperature fitted on the style-A validation
# split after training; the training itself is the same as without); stack_aug_rank (stack_aug with
# model.fusion.calibrate=rank: each expert's confidence ranked among its validation confidences);
# stack_shift and stack_aug_shift (model.fusion.calibrate=shift: each expert's weight also scaled by
# how typical the sample's encoder features are among the style-A validation ones, k-NN distance,
# shift_k 5 and shift_alpha 0.1 unless SHIFT_K / SHIFT_ALPHA say otherwise); stack_aug_floor
# (stack_aug with model.fusion.floor=$FLOOR, default 0.1: each expert mixed with the uniform
# distribution, so none can veto a class outright); stack_aug_shift_floor (both).
# Outputs: $OUT (default runs/style_shift)/runs/<variant>_s<seed>/ (run, time.txt, eval/<condition>.json),
# $OUT/logs/, $OUT/table.md. A run whose eval files all exist is not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
DATA=${DATA:-data/emoji/manifest.jsonl}
OUT=${OUT:-runs/style_shift}
SEEDS=${SEEDS:-"0"}
VARIANTS=${VARIANTS:-"text image image_aug audio concat concat_md conf stack stack_p0 stack_aug stack_aug_cal"}
EXTRA=${EXTRA:-}
THREADS=${THREADS:-1}
TABLE_ONLY=${TABLE_ONLY:-}
STYLE_A=${STYLE_A:-google}
STYLE_B=${STYLE_B:-twitter}
SHIFT_K=${SHIFT_K:-5}
SHIFT_ALPHA=${SHIFT_ALPHA:-0.1}
FLOOR=${FLOOR:-0.1}
AUG="--set model.encoders.image.augment.flip=0.5 --set model.encoders.image.augment.shift=3"
AUG="$AUG --set model.encoders.image.augment.grayscale=0.3"
CONDITIONS="styleA styleB styleA_noimage styleA_noaudio styleA_notext styleB_noaudio styleB_notext"

recipe_and_sets() {
  case "$1" in
    text|image|audio) echo "recipes/emoji_style_shift.yaml --set model.modalities=[$1]" ;;
    image_aug) echo "recipes/emoji_style_shift.yaml --set model.modalities=[image] $AUG" ;;
    concat) echo "recipes/emoji_style_shift.yaml" ;;
    concat_md) echo "recipes/emoji_style_shift.yaml --set model.modality_dropout=0.3" ;;
    conf) echo "recipes/emoji_style_shift_conf.yaml" ;;
    stack|stack_p0|stack_aug|stack_cal|stack_aug_cal|stack_aug_rank|stack_shift|stack_aug_shift|stack_aug_floor|stack_aug_shift_floor)
      local p=1.0 img=image cal=none floor=0
      [[ $1 == stack_p0 ]] && p=0; [[ $1 == stack_aug* ]] && img=image_aug; [[ $1 == *_cal ]] && cal=temperature
      [[ $1 == *_rank ]] && cal=rank; [[ $1 == *_shift* ]] && cal=shift; [[ $1 == *_floor ]] && floor=$FLOOR
      echo "recipes/emoji_style_shift_conf.yaml --set model.fusion.power=$p --set model.freeze=[image,text,audio]" \
        "--set model.fusion.calibrate=$cal --set model.fusion.floor=$floor" \
        "--set model.fusion.shift_k=$SHIFT_K --set model.fusion.shift_alpha=$SHIFT_ALPHA" \
        "--set model.init_from=[$OUT/runs/text_s$2,$OUT/runs/${img}_s$2,$OUT/runs/audio_s$2]" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

mkdir -p "$OUT/m" "$OUT/logs" "$OUT/runs"
if [[ -z "$TABLE_ONLY" ]]; then
  [[ -f "$DATA" ]] || "$BRAID" data build emoji --out "$(dirname "$DATA")" --threads "$THREADS"
  for st in A B; do
    sub=$STYLE_A; [[ $st == B ]] && sub=$STYLE_B
    "$BRAID" data filter "$DATA" --out "$OUT/m/style$st.jsonl" --keep "image~/$sub/" > /dev/null
    for m in image audio text; do
      "$BRAID" data filter "$DATA" --out "$OUT/m/style${st}_no$m.jsonl" --keep "image~/$sub/" --drop "$m" > /dev/null
    done
  done
fi

for s in $SEEDS; do   # seed outermost: a cut-short call leaves every variant of the first seeds
  [[ -n "$TABLE_ONLY" ]] && break
  for v in $VARIANTS; do
    run="$OUT/runs/${v}_s$s"
    done_all=1
    for c in $CONDITIONS; do [[ -f "$run/eval/$c.json" ]] || done_all=0; done
    [[ $done_all == 1 ]] && continue
    rm -rf "$run"
    echo "== $v seed $s"
    t0=$(date +%s)
    # shellcheck disable=SC2046,SC2086
    "$BRAID" train $(recipe_and_sets "$v" "$s") --data "$OUT/m/styleA.jsonl" --out "$run" --seed "$s" \
      --threads "$THREADS" $EXTRA > "$OUT/logs/${v}_s$s.train.log" 2>&1
    t1=$(date +%s)
    echo "$((t1 - t0))" > "$run/time.txt"
    mkdir -p "$run/eval"
    for c in $CONDITIONS; do
      "$BRAID" eval "$run" --data "$OUT/m/$c.jsonl" --split test --threads "$THREADS" --json \
        > "$OUT/logs/${v}_s$s.$c.eval.log" 2>&1
      tail -n 1 "$OUT/logs/${v}_s$s.$c.eval.log" > "$run/eval/$c.json"
    done
    echo "   train $((t1 - t0)) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done

/usr/bin/python3 - "$OUT" "$VARIANTS" "$SEEDS" "$CONDITIONS" > "$OUT/table.md" <<'PY'
import json, math, os, sys
from collections import Counter
out, variants, seeds, conds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
uni = ["text", "image", "image_aug", "audio"]
names = {"styleA": "A clean", "styleB": "B (held-out style)", "styleA_noimage": "A, no image",
         "styleA_noaudio": "A, no audio", "styleA_notext": "A, no text", "styleB_noaudio": "B, no audio",
         "styleB_notext": "B, no text"}

def mean(xs): return sum(xs) / len(xs)
def ms(xs):
    if not xs: return "–"
    if len(xs) == 1: return f"{xs[0]:.3f}"
    m = mean(xs); sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return f"{m:.3f} ± {sd:.3f}"

acc = {}  # (variant, cond) -> [accuracy per seed]
n_seeds = {}
for v in variants:
    for s in seeds:
        d = os.path.join(out, "runs", f"{v}_s{s}", "eval")
        ok = all(os.path.exists(os.path.join(d, c + ".json")) for c in conds)
        if not ok: continue
        n_seeds[v] = n_seeds.get(v, 0) + 1
        for c in conds:
            acc.setdefault((v, c), []).append(json.load(open(os.path.join(d, c + ".json")))["accuracy"])

def available(v, c):  # a unimodal model whose modality the condition lacks has nothing to say
    return not c.endswith("_no" + v.split("_")[0])

print("| model | seeds | " + " | ".join(names.get(c, c) for c in conds) + " |")
print("|---|---:|" + "---:|" * len(conds))
for v in variants:
    if v not in n_seeds: continue
    cells = [ms(acc[(v, c)]) if (v not in uni or available(v, c)) else "(absent)" for c in conds]
    print(f"| {v} | {n_seeds[v]} | " + " | ".join(cells) + " |")
best = {}
for c in conds:
    cands = [(mean(acc[(u, c)]), u) for u in uni if (u, c) in acc and available(u, c)]
    if cands: best[c] = max(cands)
if best:
    print("| **best available unimodal** | | " + " | ".join(f"{best[c][0]:.3f} ({best[c][1]})" if c in best else "–" for c in conds) + " |")
    for v in variants:
        if v in uni or v not in n_seeds: continue
        cells = []
        for c in conds:
            if c not in best: cells.append("–"); continue
            # per seed: fused minus the best unimodal mean; worst seed in brackets
            diffs = [a - best[c][0] for a in acc[(v, c)]]
            cells.append(f"{mean(diffs):+.3f} (worst {min(diffs):+.3f})")
        print(f"| {v} − best unimodal | | " + " | ".join(cells) + " |")
# majority and chance from the test split of the clean manifest
labels = [json.loads(l)["label"] for l in open(os.path.join(out, "m", "styleA.jsonl")) if l.strip() and json.loads(l)["split"] == "test"]
train = [json.loads(l)["label"] for l in open(os.path.join(out, "m", "styleA.jsonl")) if l.strip() and json.loads(l)["split"] == "train"]
if labels:
    top_train = Counter(train).most_common(1)[0][0]
    maj = sum(1 for l in labels if l == top_train) / len(labels)
    k = len(set(train))
    print(f"| majority class of train ({top_train}) | | " + " | ".join(f"{maj:.3f}" for _ in conds) + " |")
    print(f"| chance (1/{k}) | | " + " | ".join(f"{1 / k:.3f}" for _ in conds) + " |")
    print()
    print(f"Test split: {len(labels)} emoji per style; {k} classes.")
PY
cat "$OUT/table.md"
