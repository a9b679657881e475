#!/usr/bin/env bash
# scripts/mllm_emoji.sh — the multimodal LM recipe end to end (issue 15; docs/mllm.md):
#   1. the towers: CLIP on emoji (recipes/emoji_clip.yaml; image, text and audio aligned)
#   2. stage 1: CLIP towers frozen; projectors and the LM learn to name images and spoken names, and the LM
#      the names alone (task lm: no input) — caption loss + language modelling
#   3. stage 2: instruction tuning on every task, including "which group is this?" (answer: the group);
#      the LM at lr x0.05, the towers at x0.1 (train.lr_scale), projectors at the full rate
#   4. eval on the test split (held-out emoji): braid eval --task caption / qa with the nearest-neighbour
#      and prior baselines; the encoder's own classifier for the group question (a linear probe on the
#      frozen CLIP image tower: braid eval runs/clip --task probe)
# and writes $OUT/results.md (the table, examples, times per stage, commands).
#
#   bash scripts/mllm_emoji.sh
#   OUT=runs/mllm_b EPOCHS1=8 EPOCHS2=3 bash scripts/mllm_emoji.sh
# Environment: BRAID, OUT (runs/mllm_emoji), DATA (data/emoji), EPOCHS1, EPOCHS2, THREADS (0 = all), EXTRA
# (extra arguments for both stages). Stages whose run finished are not redone (delete the directory).
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
OUT=${OUT:-runs/mllm_emoji}
DATA=${DATA:-data/emoji}
EPOCHS1=${EPOCHS1:-5}
EPOCHS2=${EPOCHS2:-3}
THREADS=${THREADS:-0}
EXTRA=${EXTRA:-}
NAMES=$DATA/manifest.names.jsonl
mkdir -p "$OUT"
[ -f "$NAMES" ] || "$BRAID" data build emoji --out "$DATA"

stage() {  # name, then braid train arguments; records wall seconds in $OUT/<name>.seconds
  local name=$1; shift
  if [ -f "$OUT/$name/summary.json" ] && [ -f "$OUT/$name/model.pt" ]; then
    echo "[mllm] $name: done before ($OUT/$name)"; return
  fi
  echo "[mllm] $name: braid train $*"
  local t0; t0=$(date +%s.%N)
  "$BRAID" train "$@" --out "$OUT/$name" --threads "$THREADS" 2>&1 | grep -v '^\(train\|validate\|generate\|embed\) ' \
    | tee "$OUT/$name.log"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$OUT/$name.seconds"
}

stage clip recipes/emoji_clip.yaml --data "$DATA/manifest.jsonl"
# shellcheck disable=SC2086
stage stage1 recipes/emoji_mllm.yaml --data "$NAMES" --set "model.init_from=$OUT/clip" \
  --set "train.epochs=$EPOCHS1" --set 'model.freeze=[encoders]' \
  --set 'model.tasks=[{name: name, modality: image, prompt: "what is shown?", answer: text}, {name: spoken, modality: audio, prompt: "what is said?", answer: text}, {name: lm, answer: text}]' \
  $EXTRA
# shellcheck disable=SC2086
stage stage2 recipes/emoji_mllm.yaml --data "$NAMES" --set "model.init_from=$OUT/stage1" \
  --set "train.epochs=$EPOCHS2" --set 'train.lr_scale={lm: 0.05, enc_image: 0.1, enc_audio: 0.1}' \
  --set train.warmup_steps=10 $EXTRA

ev() {  # run task split -> $OUT/<run>_<task>.json
  "$BRAID" eval "$OUT/$1" --data "$NAMES" --split test --task "$2" --json --threads "$THREADS" 2>/dev/null \
    | tail -n 1 > "$OUT/$1_$2.json"
}
ev stage2 caption
ev stage2 qa
ev stage1 caption
"$BRAID" eval "$OUT/clip" --data "$NAMES" --split test --task probe --json --threads "$THREADS" 2>/dev/null \
  | tail -n 1 > "$OUT/clip_probe.json"

/usr/bin/python3 - "$OUT" > "$OUT/results.md" <<'PY'
import json, sys, os
out = sys.argv[1]
j = lambda n: json.load(open(os.path.join(out, n)))
cap, qa, cap1, probe = j("stage2_caption.json"), j("stage2_qa.json"), j("stage1_caption.json"), j("clip_probe.json")
secs = {s: float(open(os.path.join(out, s + ".seconds")).read()) for s in ("clip", "stage1", "stage2")}
rows = []
def row(task, by, s, extra=""):
    rows.append(f"| {task} | {by} | {s['n']} | {s['exact']*100:.1f} % | {s['f1']:.3f} | {s['bleu4']:.3f} | {s['chrf']:.3f} | {extra} |")
for name, s in cap["tasks"].items():
    row(name, "braid MLLM (stage 2)", s, f"ppl {s.get('perplexity', float('nan')):.1f}")
    if name in cap1["tasks"]: row(name, "after stage 1", cap1["tasks"][name])
    row(name, "nearest train answer", s["nearest"])
    row(name, "LM prior (no input)", s["prior"], "'" + s["prior"].get("text", "") + "'")
for name, s in qa["tasks"].items():
    row(name, "braid MLLM (stage 2)", s, f"accuracy {s['accuracy']:.3f}")
    row(name, "nearest train answer", s["nearest"], f"accuracy {s['nearest']['exact']:.3f}")
    row(name, "LM prior (no input)", s["prior"], f"accuracy {s['prior']['exact']:.3f}")
pr = probe.get("probe", {}).get("image", {})
print("| task | answered by | n | exact | token F1 | BLEU-4 | chrF | |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print(f"\nThe encoder's own classifier (linear probe on the frozen CLIP image tower, group, test split): "
      f"top-1 {pr.get('top1', float('nan')):.3f}.\n")
print("| stage | wall s |\n|---|---|")
for k, v in secs.items(): print(f"| {k} | {v:.0f} |")
print(f"| total | {sum(secs.values()):.0f} |\n")
print("| id | task | reference | generated |\n|---|---|---|---|")
for e in cap.get("examples", []) + qa.get("examples", [])[:6]:
    print(f"| {e['id']} | {e['task']} | {e['reference']} | {e['generated']} |")
PY
cat "$OUT/results.md"
