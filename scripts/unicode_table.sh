#!/usr/bin/env bash
# scripts/unicode_table.sh — Uni-Code on emoji: every variant (full model, baselines, ablations) x seeds,
# `braid train` + `braid eval --task cmg --json`, then a markdown table of mean ± std (docs/results/unicode_emoji.md).
#
#   bash scripts/unicode_table.sh                     # all variants, seeds 0 1 2
#   SEEDS="0" VARIANTS="full no_cpc" bash scripts/unicode_table.sh
#   EXTRA="--set train.epochs=2" bash scripts/unicode_table.sh   # extra arguments for every `braid train`
#   TABLE_ONLY=1 SEEDS="0 1 2" bash scripts/unicode_table.sh      # only the table of what $OUT holds (no runs)
# Outputs: $OUT (default runs/unicode_table)/<variant>_s<seed>/ (runs, cmg.json, train.log, time.txt) and
# $OUT/table.md. Runs whose cmg.json exists are not redone (delete it to rerun).
# Two evaluations of every run: cmg.json scores model.pt (the trainer's pick: the weights with the best
# validation mean R@1, checked once per epoch), cmg_final.json the weights after the last step
# (`braid eval --weights last`: the model inside checkpoints/last.pt), so that every variant is scored after the same epochs.
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

# The weights of the last step (the model inside checkpoints/last.pt).
eval_final() {
  "$BRAID" eval "$1" --data "$DATA" --task cmg --threads "$THREADS" --json --weights last \
    > "$OUT/logs/${2}_s$3.eval_final.log" 2>&1
  tail -n 1 "$OUT/logs/${2}_s$3.eval_final.log" > "$1/cmg_final.json"
}

TABLE_ONLY=${TABLE_ONLY:-0}

mkdir -p "$OUT/logs"
for v in $VARIANTS; do
  [[ "$TABLE_ONLY" == 1 ]] && break
  for s in $SEEDS; do
    run="$OUT/${v}_s$s"
    if [[ -f "$run/cmg.json" ]]; then
      [[ -f "$run/cmg_final.json" ]] || eval_final "$run" "$v" "$s"
      continue
    fi
    rm -rf "$run"
    echo "== $v seed $s"
    t0=$(date +%s)
    # shellcheck disable=SC2046,SC2086
    "$BRAID" train "$RECIPE" --data "$DATA" --out "$run" --seed "$s" --threads "$THREADS" $(sets "$v") $EXTRA \
      > "$OUT/logs/${v}_s$s.train.log" 2>&1
    t1=$(date +%s)
    "$BRAID" eval "$run" --data "$DATA" --task cmg --threads "$THREADS" --json > "$OUT/logs/${v}_s$s.eval.log" 2>&1
    tail -n 1 "$OUT/logs/${v}_s$s.eval.log" > "$run/cmg.json"
    echo "$((t1 - t0))" > "$run/time.txt"
    eval_final "$run" "$v" "$s"
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

def load(fname):
    rows = {}
    for v in variants:
        rs = []
        for s in seeds:
            d = os.path.join(out, f"{v}_s{s}")
            if os.path.exists(os.path.join(d, fname)):
                j = json.load(open(os.path.join(d, fname)))
                j["_time"] = float(open(os.path.join(d, "time.txt")).read())
                j["_best_step"] = json.load(open(os.path.join(d, "summary.json")))["best_step"]
                rs.append(j)
        if rs:
            rows[v] = rs
    return rows

def table(fname, title):
    rows = load(fname)
    if not rows:
        return
    first = next(iter(rows.values()))[0]
    keys = list(first["pairs"])
    pairs = [k for k in keys if k.split("->")[0] != k.split("->")[1]]
    diag = [k for k in keys if k.split("->")[0] == k.split("->")[1]]
    print(f"## {title}")
    print()
    print(f"CMG accuracy (head on A's train-split embeddings, tested on B's test split), {first['classes']} classes, "
          f"chance 1/K = {first['chance']:.3f}; majority share of the test split: "
          + ", ".join(f"{k.split('->')[1]} {v['majority']:.3f}" for k, v in first["pairs"].items() if k.split('->')[0] == 'image'))
    print()
    print("| variant | seeds | " + " | ".join(pairs) + " | mean A≠B | " + " | ".join(diag)
          + " | retrieval mean R@1 | train s | best step |")
    print("|" + "---|" * (len(pairs) + len(diag) + 6))
    for v, rs in rows.items():
        cells = [ms([r["pairs"][k]["acc"] for r in rs]) for k in pairs]
        dcells = [ms([r["pairs"][k]["acc"] for r in rs]) for k in diag]
        print(f"| {v} | {len(rs)} | " + " | ".join(cells) + f" | {ms([r['mean_cross'] for r in rs])} | " + " | ".join(dcells)
              + f" | {ms([r.get('mean_r1', float('nan')) for r in rs])} | {ms([r['_time'] for r in rs])} | "
              + ", ".join(str(r["_best_step"]) for r in rs) + " |")
    print()
    mods = list(first.get("codes", {}).keys())
    agree = list(first.get("code_agreement", {}).keys())
    if not mods:  # not a unicode model (e.g. a dual_tower baseline): no codebook
        return
    # chance level of the agreement (rows paired with unpaired rows), when the eval wrote it
    chance = [a for a in agree if all("code_agreement_chance" in r for rs in rows.values() for r in rs)]
    print("Codebook health on the test split (perplexity / codes used per modality, cross-modal code agreement"
          + (" and its chance level, the agreement with unpaired rows" if chance else "") + ", live codes):")
    print()
    print("| variant | " + " | ".join(f"ppl {m}" for m in mods) + " | " + " | ".join(f"used {m}" for m in mods) + " | "
          + " | ".join(f"agree {a}" for a in agree) + "".join(f" | chance {a}" for a in chance) + " | live codes |")
    print("|" + "---|" * (2 * len(mods) + len(agree) + len(chance) + 2))
    for v, rs in rows.items():
        print(f"| {v} | " + " | ".join(ms([r["codes"][m]["perplexity"] for r in rs]) for m in mods) + " | "
              + " | ".join(ms([r["codes"][m]["used"] for r in rs]) for m in mods) + " | "
              + " | ".join(ms([r["code_agreement"][a] for r in rs]) for a in agree)
              + "".join(" | " + ms([r["code_agreement_chance"][a] for r in rs]) for a in chance)
              + f" | {ms([r['live_codes'] for r in rs])} |")
    print()

table("cmg_final.json", "Final weights (after the last step; same training length for every variant)")
table("cmg.json", "model.pt (the trainer's pick: best validation mean R@1; 'best step' says when)")
PY
cat "$OUT/table.md"
