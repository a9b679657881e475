#!/usr/bin/env bash
# bf16 vs fp32 accuracy parity (issue 19, CPU bf16): is `precision: bf16` (CPU autocast, fp32 master
# weights) as accurate as fp32 on the quickstart and CLIP recipes? Trains each row under both precisions
# with the same seed and evaluates it on the test split under the precision it trained with (what a user
# of `precision: auto` gets), then prints per-seed values, means and the bf16 - fp32 differences.
#
#   bash scripts/bf16_parity.sh                 # seeds 0 1 2, all rows
#   SEEDS="0" ROWS="text clip" bash scripts/bf16_parity.sh
#
# Rows: text / image / fused = recipes/emoji_late_fusion.yaml with model.modalities [text], [image], all
# (test accuracy and macro-F1); clip = recipes/emoji_clip.yaml (test retrieval, image<->text R@1 / R@10,
# mean of image->text and text->image); embed = the fp32 CLIP run of each seed re-embedded under bf16: the cosine of
# each sample's bf16 embedding to its fp32 one (min and mean over the test split, image and text).
# Environment: BRAID (build/apps/braid/braid), DATA (data/emoji/manifest.jsonl), OUT (temp dir, kept),
# SEEDS (0 1 2), ROWS (text image fused clip embed), THREADS (2), TABLE_ONLY (1: only print the table of
# what OUT holds; rows print the seeds that have both precisions).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BRAID=${BRAID:-$ROOT/build/apps/braid/braid}
DATA=${DATA:-$ROOT/data/emoji/manifest.jsonl}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_bf16_parity.XXXXXX")}
SEEDS=${SEEDS:-0 1 2}
ROWS=${ROWS:-text image fused clip embed}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
say() { printf '%s\n' "$*" >&2; }
say "results in $OUT"

train_eval() {  # row seed precision recipe [--set ...]: train + test eval -> $OUT/<row>_<prec>_s<seed>.json
  local row=$1 seed=$2 prec=$3 recipe=$4; shift 4
  local d="$OUT/${row}_${prec}_s${seed}"
  if [ -f "$d.json" ]; then return; fi
  say "== $row seed $seed $prec"
  rm -rf "$d"
  "$BRAID" train "$recipe" --data "$DATA" --out "$d" --threads "$THREADS" --set "seed=$seed" \
    --set "precision=$prec" "$@" >"$d.train.log" 2>&1
  "$BRAID" eval "$d" --data "$DATA" --split test --threads "$THREADS" --json 2>>"$d.train.log" | tail -1 >"$d.json.tmp"
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['train_seconds']=json.load(open(sys.argv[2]))['seconds']; json.dump(d,open(sys.argv[1],'w'))" \
    "$d.json.tmp" "$d/summary.json"
  mv "$d.json.tmp" "$d.json"
}

embed_pair() {  # seed: the fp32 CLIP run embedded under fp32 and (a copy whose recipe says bf16) under bf16
  local seed=$1 src="$OUT/clip_fp32_s$1" m
  local b="$OUT/embed_bf16_s$seed"
  rm -rf "$b"; cp -r "$src" "$b"
  sed -i 's/^precision: .*/precision: bf16/' "$b/recipe.resolved.yaml"
  grep -q '^precision: bf16' "$b/recipe.resolved.yaml"
  for m in image text; do
    "$BRAID" embed "$src" --data "$DATA" --split test --modality "$m" --threads "$THREADS" \
      --out "$OUT/embed_s${seed}_${m}_fp32.safetensors" 2>/dev/null
    "$BRAID" embed "$b" --data "$DATA" --split test --modality "$m" --threads "$THREADS" \
      --out "$OUT/embed_s${seed}_${m}_bf16.safetensors" 2>/dev/null
  done
}

for seed in $SEEDS; do
  [ "${TABLE_ONLY:-0}" = 1 ] && break
  for prec in fp32 bf16; do
    for row in $ROWS; do
      case $row in
        text) train_eval text "$seed" "$prec" "$ROOT/recipes/emoji_late_fusion.yaml" --set 'model.modalities=[text]' ;;
        image) train_eval image "$seed" "$prec" "$ROOT/recipes/emoji_late_fusion.yaml" --set 'model.modalities=[image]' ;;
        fused) train_eval fused "$seed" "$prec" "$ROOT/recipes/emoji_late_fusion.yaml" ;;
        clip) train_eval clip "$seed" "$prec" "$ROOT/recipes/emoji_clip.yaml" ;;
        embed) ;;
        *) say "unknown row $row"; exit 2 ;;
      esac
    done
  done
  case " $ROWS " in *" embed "*) if [ -d "$OUT/clip_fp32_s$seed" ]; then embed_pair "$seed"; fi ;; esac
done

/usr/bin/python3 - "$OUT" "$SEEDS" "$ROWS" <<'PYEOF'
import glob, json, os, statistics, sys
out, seeds, rows = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def load(row, prec, s):
    p = os.path.join(out, f"{row}_{prec}_s{s}.json")
    return json.load(open(p)) if os.path.exists(p) else None

def metrics(row, d):
    if row == "clip":
        r = [d["retrieval"][k] for k in ("image->text", "text->image")]
        return {"R@1": statistics.mean(x["r1"] for x in r), "R@10": statistics.mean(x["r10"] for x in r)}
    return {"accuracy": d["accuracy"], "macro_f1": d["macro_f1"]}

print("| row | metric | seeds | fp32 per seed | bf16 per seed | fp32 mean | bf16 mean | bf16 - fp32 (points) | train s fp32 / bf16 |")
print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |")
for row in rows:
    if row == "embed":
        continue
    pairs = [(s, load(row, "fp32", s), load(row, "bf16", s)) for s in seeds]
    pairs = [(s, a, b) for s, a, b in pairs if a and b]
    if not pairs:
        continue
    for key in metrics(row, pairs[0][1]):
        fa = [metrics(row, a)[key] for _, a, _ in pairs]
        fb = [metrics(row, b)[key] for _, _, b in pairs]
        ts = "; ".join(f"{a['train_seconds']:.0f} / {b['train_seconds']:.0f}" for _, a, b in pairs)
        print(f"| {row} | {key} | {' '.join(s for s, _, _ in pairs)} | {', '.join(f'{x:.3f}' for x in fa)} | {', '.join(f'{x:.3f}' for x in fb)} | "
              f"{statistics.mean(fa):.3f} | {statistics.mean(fb):.3f} | {100 * (statistics.mean(fb) - statistics.mean(fa)):+.1f} | {ts} |")
print("\ntest split; each run evaluated under the precision it trained with; train seconds are wall time on a shared machine")

if "embed" in rows:
    import struct
    import numpy as np

    def read_st(path, name="vectors"):
        raw = open(path, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        hdr = json.loads(raw[8:8 + n])
        meta = hdr[name]
        a, b = meta["data_offsets"]
        assert meta["dtype"] == "F32", meta
        return np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(meta["shape"])

    print("\n| seed | modality | n | min cosine bf16 vs fp32 | mean cosine |")
    print("| --- | --- | ---: | ---: | ---: |")
    for s in seeds:
        for m in ("image", "text"):
            pf = os.path.join(out, f"embed_s{s}_{m}_fp32.safetensors")
            pb = os.path.join(out, f"embed_s{s}_{m}_bf16.safetensors")
            if not (os.path.exists(pf) and os.path.exists(pb)):
                continue
            a, b = read_st(pf).astype("f8"), read_st(pb).astype("f8")
            c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            print(f"| {s} | {m} | {len(c)} | {c.min():.5f} | {c.mean():.5f} |")
PYEOF
