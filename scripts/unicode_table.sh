#!/usr/bin/env bash
# scripts/unicode_table.sh — Uni-Code on emoji: every variant (full model, baselines, ablations) x seeds,
# `braid train` + `braid eval --task cmg --json`, then a markdown table of mean ± std (docs/results/unicode_emoji.md).
#
#   bash scripts/unicode_table.sh                     # all variants, seeds 0 1 2
#   SEEDS="0" VARIANTS="full no_cpc" bash scripts/unicode_table.sh
#   EXTRA="--set train.epochs=2" bash scripts/unicode_table.sh   # extra arguments for every `braid train`
# Outputs: $OUT (default runs/unicode_table)/<variant>_s<seed>/ (runs, cmg.json, train.log, time.txt) and
# $OUT/table.md. Runs whose cmg.json exists are not redone (delete it to rerun).
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
OUT=${OUT:-runs/unicode_table}
DATA=${DATA:-data/emoji/manifest.jsonl}
RECIPE=${RECIPE:-recipes/emoji_unicode.yaml}
SEEDS=${SEEDS:-"0 1 2"}
VARIANTS=${VARIANTS:-"full no_mi plain_vq contrastive no_mm_ema no_club no_cpc no_cmcm no_reset"}
EXTRA=${EXTRA:-}
THREADS=${THREADS:-2}

sets() {
  case "$1" in
    full) echo "" ;;
    no_mi) echo "--set model.weights.club=0 --set model.weights.cpc=0" ;;
    plain_vq) echo "--set model.mm_ema=false --set model.weights.club=0 --set model.weights.cpc=0 --set model.weights.cmcm=0" ;;
    contrastive) echo "--set model.weights.nce=1 --set model.weights.club=0 --set model.weights.cpc=0 --set model.weights.cmcm=0" ;;
    no_mm_ema) echo "--set model.mm_ema=false" ;;
    no_club) echo "--set model.weights.club=0" ;;
    no_cpc) echo "--set model.weights.cpc=0" ;;
    no_cmcm) echo "--set model.weights.cmcm=0" ;;
    no_reset) echo "--set model.reset=false" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

mkdir -p "$OUT"
for v in $VARIANTS; do
  for s in $SEEDS; do
    run="$OUT/${v}_s$s"
    [[ -f "$run/cmg.json" ]] && continue
    rm -rf "$run"
    mkdir -p "$OUT/logs"
    echo "== $v seed $s"
    t0=$(date +%s)
    # shellcheck disable=SC2046
    "$BRAID" train "$RECIPE" --data "$DATA" --out "$run" --seed "$s" --threads "$THREADS" $(sets "$v") $EXTRA \
      > "$OUT/logs/${v}_s$s.train.log" 2>&1
    t1=$(date +%s)
    "$BRAID" eval "$run" --data "$DATA" --task cmg --threads "$THREADS" --json > "$OUT/logs/${v}_s$s.eval.log" 2>&1
    tail -n 1 "$OUT/logs/${v}_s$s.eval.log" > "$run/cmg.json"
    echo "$((t1 - t0))" > "$run/time.txt"
    echo "   train $((t1 - t0)) s, eval $(( $(date +%s) - t1 )) s"
  done
done

python3 - "$OUT" "$VARIANTS" "$SEEDS" > "$OUT/table.md" <<'PY'
import json, math, os, sys
out, variants, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def ms(xs):
    if not xs:
        return "—"
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return f"{m:.3f} ± {sd:.3f}" if len(xs) > 1 else f"{m:.3f}"

rows, pairs = {}, None
for v in variants:
    rs = []
    for s in seeds:
        p = os.path.join(out, f"{v}_s{s}", "cmg.json")
        if os.path.exists(p):
            j = json.load(open(p))
            j["_time"] = float(open(os.path.join(out, f"{v}_s{s}", "time.txt")).read())
            rs.append(j)
    if not rs:
        continue
    rows[v] = rs
    if pairs is None:
        pairs = [k for k in rs[0]["pairs"] if k.split("->")[0] != k.split("->")[1]]
        diag = [k for k in rs[0]["pairs"] if k.split("->")[0] == k.split("->")[1]]
if not rows:
    sys.exit("no results")
first = next(iter(rows.values()))[0]
print(f"CMG accuracy (head on A's train codes, tested on B's test codes), {first['classes']} classes, "
      f"chance 1/K = {first['chance']:.3f}; majority share of the test split: "
      + ", ".join(f"{k.split('->')[1]} {v['majority']:.3f}" for k, v in first["pairs"].items() if k.split('->')[0] == 'image'))
print()
print("| variant | seeds | " + " | ".join(pairs) + " | mean A≠B | " + " | ".join(diag) + " | retrieval mean R@1 | train s |")
print("|" + "---|" * (len(pairs) + len(diag) + 5))
for v, rs in rows.items():
    cells = [ms([r["pairs"][k]["acc"] for r in rs]) for k in pairs]
    dcells = [ms([r["pairs"][k]["acc"] for r in rs]) for k in diag]
    print(f"| {v} | {len(rs)} | " + " | ".join(cells) + f" | {ms([r['mean_cross'] for r in rs])} | " + " | ".join(dcells)
          + f" | {ms([r.get('mean_r1', float('nan')) for r in rs])} | {ms([r['_time'] for r in rs])} |")
print()
mods = list(first.get("codes", {}).keys())
agree = list(first.get("code_agreement", {}).keys())
print("Codebook health on the test split (perplexity / codes used per modality, cross-modal code agreement, live codes at the end of training):")
print()
print("| variant | " + " | ".join(f"ppl {m}" for m in mods) + " | " + " | ".join(f"used {m}" for m in mods) + " | "
      + " | ".join(f"agree {a}" for a in agree) + " | live codes |")
print("|" + "---|" * (2 * len(mods) + len(agree) + 2))
for v, rs in rows.items():
    print(f"| {v} | " + " | ".join(ms([r["codes"][m]["perplexity"] for r in rs]) for m in mods) + " | "
          + " | ".join(ms([r["codes"][m]["used"] for r in rs]) for m in mods) + " | "
          + " | ".join(ms([r["code_agreement"][a] for r in rs]) for a in agree) + f" | {ms([r['live_codes'] for r in rs])} |")
PY
cat "$OUT/table.md"
