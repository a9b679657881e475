#!/usr/bin/env bash
# scripts/generate_emoji.sh — text -> image on emoji end to end (issue 17; docs/results/generate_emoji.md):
#   1. $RUNS/vq:   the image tokenizer (recipes/emoji_vq.yaml: 8x8 codes of 32x32 emoji)
#   2. $RUNS/t2i:  the early-fusion LM that writes those codes from a name (recipes/emoji_t2i.yaml,
#                  model.init_from=$RUNS/vq)
#   3. $RUNS/clip: the judge's image and text towers (recipes/emoji_clip.yaml)
#   4. $RUNS/clf:  the judge's classifier, trained on real images only (recipes/emoji_late_fusion.yaml,
#                  model.modalities=[image])
#   5. braid eval $RUNS/t2i --task draw on the test split (emoji never seen in training): CAS, R@1/R@10 and
#      KID of the drawn images vs the nearest-train-name and VQ-ceiling baselines; every image, grid.png and
#      prompts.txt into $OUT, the JSON into $OUT/eval.json, and the markdown table into $OUT/table.md (printed).
# Runs that finished (model.pt and summary.json) are reused: delete a directory to retrain it.
#
#   bash scripts/generate_emoji.sh
#   RUNS=/tmp/gen_smoke OUT=/tmp/gen_smoke/out EXTRA="--set train.max_steps=20" bash scripts/generate_emoji.sh
# Environment: BRAID (build/apps/braid/braid), DATA (data/emoji), MANIFEST ($DATA/manifest.names.jsonl: the
# names are the prompts), RUNS (runs), OUT ($RUNS/draw_eval: every drawn PNG; the grids of docs/results/generate_emoji/ come from there), THREADS (0 = all), GUIDANCE (1),
# TEMPERATURE (0.7) and TOP_K (32) of the sampling (the settings of the results table),
# PER_PROMPT (3), SEED (0), EXTRA (extra `braid train` arguments for every run, e.g. --set train.max_steps=20),
# T2I_EXTRA (extra arguments for the t2i run only), T2I_TEXT (names: the drawing model reads the names; mixed:
# the name or the keyword text of each row at random, which drew better, see the results page), CLIP (another align run as the judge's image and text
# towers instead of training $RUNS/clip, e.g. the LiT run of recipes/emoji_lit.yaml with a pretrained text tower).
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
DATA=${DATA:-data/emoji}
MANIFEST=${MANIFEST:-$DATA/manifest.names.jsonl}
RUNS=${RUNS:-runs}
OUT=${OUT:-$RUNS/draw_eval}
THREADS=${THREADS:-0}
GUIDANCE=${GUIDANCE:-1}
TEMPERATURE=${TEMPERATURE:-0.7}
TOP_K=${TOP_K:-32}
PER_PROMPT=${PER_PROMPT:-3}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}
T2I_EXTRA=${T2I_EXTRA:-}
[ -f "$MANIFEST" ] || "$BRAID" data build emoji --out "$DATA"
mkdir -p "$RUNS" "$OUT"

stage() {  # name, then braid train arguments; records the wall seconds in $RUNS/<name>.seconds
  local name=$1; shift
  if [ -f "$RUNS/$name/summary.json" ] && [ -f "$RUNS/$name/model.pt" ]; then
    echo "[generate] $name: done before ($RUNS/$name)"; return
  fi
  echo "[generate] $name: braid train $*"
  local t0; t0=$(date +%s.%N)
  "$BRAID" train "$@" --data "${STAGE_DATA:-$MANIFEST}" --out "$RUNS/$name" --threads "$THREADS" 2>&1 \
    | grep -v '^\(train\|validate\|eval\|embed\|draw\) ' | tee "$RUNS/$name.log"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$RUNS/$name.seconds"
}

# shellcheck disable=SC2086
stage vq recipes/emoji_vq.yaml $EXTRA
T2I_TEXT=${T2I_TEXT:-names}
if [ "$T2I_TEXT" = mixed ]; then
  # each train row's name or its keyword text ("grinning face, cheerful, cheery, grin"), drawn at random each
  # epoch: two text views of one manifest and data.text.view random; the prompts stay the names
  /usr/bin/python3 - "$DATA" <<'PY'
import json, os, sys
d = sys.argv[1]
names = {}
for line in open(os.path.join(d, "manifest.names.jsonl"), encoding="utf-8"):
    r = json.loads(line)
    names[r["id"]] = r["text"]["en"]
with open(os.path.join(d, "manifest.mixed.jsonl"), "w", encoding="utf-8") as out:
    for line in open(os.path.join(d, "manifest.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        r["text"] = {"name": names[r["id"]], "full": r["text"]["en"]}
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
PY
  # shellcheck disable=SC2086
  STAGE_DATA=$DATA/manifest.mixed.jsonl stage t2i recipes/emoji_t2i.yaml --set "model.init_from=$RUNS/vq" \
    --set data.text.view=random $EXTRA $T2I_EXTRA
else
  # shellcheck disable=SC2086
  stage t2i recipes/emoji_t2i.yaml --set "model.init_from=$RUNS/vq" $EXTRA $T2I_EXTRA
fi
# shellcheck disable=SC2086
[ -n "${CLIP:-}" ] || stage clip recipes/emoji_clip.yaml $EXTRA
CLIP=${CLIP:-$RUNS/clip}
# shellcheck disable=SC2086
stage clf recipes/emoji_late_fusion.yaml --set 'model.modalities=[image]' $EXTRA

echo "[generate] eval: braid eval $RUNS/t2i --task draw --guidance $GUIDANCE --per-prompt $PER_PROMPT --out $OUT"
"$BRAID" eval "$RUNS/t2i" --data "$MANIFEST" --split test --task draw --classifier "$RUNS/clf" --clip "$CLIP" \
  --guidance "$GUIDANCE" --temperature "$TEMPERATURE" --top-k "$TOP_K" --per-prompt "$PER_PROMPT" --seed "$SEED" --out "$OUT" --threads "$THREADS" --json \
  | tee "$OUT/eval.txt"
tail -n 1 "$OUT/eval.txt" > "$OUT/eval.json"
rm -f "$OUT/eval.txt"

/usr/bin/python3 - "$OUT/eval.json" "$RUNS" > "$OUT/table.md" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
runs = sys.argv[2]
def f(s, k, d=3):
    return f"{s[k]:.{d}f}" if k in s else "-"
names = {"generated": f"braid text -> image (guidance {r['guidance']:g}, temperature {r.get('temperature', 1):g}, "
                      f"top-k {r.get('top_k', 0)}, {r['per_prompt']} per name)",
         "nearest_name": "real image of the nearest train name",
         "vq_ceiling": "VQ reconstruction of the real image (ceiling)",
         "real": "real test image"}
print(f"Test split: {r['rows']} emoji images (names never seen in training); judges: classifier "
      f"`{r.get('classifier', '?')}` (real images only), image tower `{r.get('clip', '?')}`.\n")
print("| images | n | CAS (group accuracy) | R@1 | R@10 | KID (std) |")
print("|---|---|---|---|---|---|")
for k in ("generated", "nearest_name", "vq_ceiling", "real"):
    if k not in r: continue
    s = r[k]
    kid = f"{s['kid']:.4f} ({s['kid_std']:.4f})" if "kid" in s else "-"
    print(f"| {names[k]} | {s['n']} | {f(s, 'cas')} | {f(s, 'r1')} | {f(s, 'r10')} | {kid} |")
print(f"\nKID features: {r.get('kid_features', '?')}; drawing took {r['draw_seconds']:.0f} s "
      f"({r['seconds']:.0f} s for the whole evaluation).\n")
print("| run | train wall s |\n|---|---|")
for n in ("vq", "t2i", "clip", "clf"):
    p = os.path.join(runs, n + ".seconds")
    print(f"| {n} | {float(open(p).read()):.0f} |" if os.path.exists(p) else f"| {n} | (trained before) |")
PY
cat "$OUT/table.md"
