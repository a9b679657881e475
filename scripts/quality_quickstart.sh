#!/usr/bin/env bash
# The quickstart table over seeds: `braid quickstart --seed S` for S = 0..SEEDS-1, then one markdown
# table of test accuracy and macro-F1 per row as mean ± std (population std over the seeds).
#
#   bash scripts/quality_quickstart.sh            # OUT=runs/quality_quickstart SEEDS=3
#   OUT=/tmp/q SEEDS=5 bash scripts/quality_quickstart.sh -- --pretrained-text ""   # from-scratch text only
#
# Arguments after `--` go to every `braid quickstart` (e.g. --threads 1). Finished runs in OUT are
# reused (delete OUT to retrain). Needs the built binary (BRAID, default build/apps/braid/braid), the
# emoji data (DATA, default data/emoji; built there when missing) and, for the pretrained rows,
# runs/minilm (bash scripts/fetch_minilm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID:-build/apps/braid/braid}
OUT=${OUT:-runs/quality_quickstart}
SEEDS=${SEEDS:-3}
DATA=${DATA:-data/emoji}
[ "${1:-}" = "--" ] && shift
for ((s = 0; s < SEEDS; s++)); do
  "$BRAID" quickstart --seed "$s" --out "$OUT/seed$s" --data "$DATA" "$@" >/dev/null
done
python3 - "$OUT" "$SEEDS" <<'PY'
import json, statistics, sys
out, seeds = sys.argv[1], int(sys.argv[2])
runs = [json.load(open(f"{out}/seed{s}/results.json")) for s in range(seeds)]
names = [r["model"] for r in runs[0]["rows"]]
def ms(xs):
    return f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}"
print(f"Emoji group classification, held-out test emoji, {seeds} seeds (mean ± std)\n")
print("| model | modalities | test accuracy | test macro-F1 | per seed (accuracy) |")
print("|---|---|---:|---:|---|")
for i, n in enumerate(names):
    acc = [r["rows"][i]["test_accuracy"] for r in runs]
    f1 = [r["rows"][i]["test_macro_f1"] for r in runs]
    print(f"| {n} | {runs[0]['rows'][i]['modalities']} | {ms(acc)} | {ms(f1)} | {', '.join(f'{a:.3f}' for a in acc)} |")
print(f"| majority class ({runs[0]['majority_class']}) | none | {runs[0]['majority_baseline']:.3f} | | |")
walls = ", ".join("%.1f" % r["seconds"] for r in runs)
print(f"\nwall time per quickstart (s): {walls}")
PY
