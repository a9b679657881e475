#!/usr/bin/env bash
# Pretraining objectives table (issue 20): what each single_tower objective adds to retrieval and to a
# linear probe on emoji. Trains recipes/emoji_single_tower.yaml once per objective set and seed (same
# steps, same data order), then scores the test split: image<->text retrieval through the ITC embeddings
# (`braid eval RUN --json`: R@1 / R@10) and a logistic-regression probe over the 9 emoji groups on the
# frozen image and text embeddings (`braid eval RUN --task probe --json`).
#
#   bash scripts/pretrain_objectives.sh                                  # every row, seed 0
#   SEEDS="1 2" ROWS="itc all" OUT=/tmp/po bash scripts/pretrain_objectives.sh
#   TABLE_ONLY=1 OUT=/tmp/po bash scripts/pretrain_objectives.sh         # the table of what OUT holds
#
# Rows (model.weights; unlisted ones 0): itc {itc: 1}; itc_itm {itc: 1, itm: 1};
# itc_itm_mlm {itc: 1, itm: 1, mlm: 0.5} (the recipe); mrfr = itc_itm_mlm + {mrfr: 1};
# mrc = itc_itm_mlm + {mrc: 1}; all = itc_itm_mlm + {mrfr: 1, mrc: 1}.
# Environment: BRAID (build/apps/braid/braid), DATA (data/emoji/manifest.jsonl), OUT (temp dir, kept),
# SEEDS (0), ROWS (itc itc_itm itc_itm_mlm mrfr mrc all), EPOCHS (10), THREADS (1), TABLE_ONLY.
# A row whose OUT/<row>_s<seed>.json exists is not trained again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BRAID=${BRAID:-$ROOT/build/apps/braid/braid}
DATA=${DATA:-$ROOT/data/emoji/manifest.jsonl}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_pretrain_objectives.XXXXXX")}
SEEDS=${SEEDS:-0}
ROWS=${ROWS:-itc itc_itm itc_itm_mlm mrfr mrc all}
EPOCHS=${EPOCHS:-10}
THREADS=${THREADS:-1}
mkdir -p "$OUT"
say() { printf '%s\n' "$*" >&2; }
say "results in $OUT"

weights() {
  case $1 in
    itc) echo "{itc: 1, itm: 0, mlm: 0, mrfr: 0, mrc: 0}" ;;
    itc_itm) echo "{itc: 1, itm: 1, mlm: 0, mrfr: 0, mrc: 0}" ;;
    itc_itm_mlm) echo "{itc: 1, itm: 1, mlm: 0.5, mrfr: 0, mrc: 0}" ;;
    mrfr) echo "{itc: 1, itm: 1, mlm: 0.5, mrfr: 1, mrc: 0}" ;;
    mrc) echo "{itc: 1, itm: 1, mlm: 0.5, mrfr: 0, mrc: 1}" ;;
    all) echo "{itc: 1, itm: 1, mlm: 0.5, mrfr: 1, mrc: 1}" ;;
    *) say "unknown row $1"; exit 2 ;;
  esac
}

train_eval() {  # row seed: train + test retrieval and probe -> $OUT/<row>_s<seed>.json
  local row=$1 seed=$2 d="$OUT/$1_s$2" w
  if [ -f "$d.json" ]; then return; fi
  w=$(weights "$row")
  say "== $row seed $seed: weights $w, $EPOCHS epochs"
  rm -rf "$d"
  "$BRAID" train "$ROOT/recipes/emoji_single_tower.yaml" --data "$DATA" --out "$d" --threads "$THREADS" \
    --set "seed=$seed" --set "train.epochs=$EPOCHS" --set "model.weights=$w" >"$d.log" 2>&1
  "$BRAID" eval "$d" --data "$DATA" --split test --threads "$THREADS" --json 2>>"$d.log" | tail -1 >"$d.retrieval.json"
  "$BRAID" eval "$d" --data "$DATA" --split test --task probe --threads "$THREADS" --json 2>>"$d.log" | tail -1 >"$d.probe.json"
  /usr/bin/python3 - "$d" "$(uptime)" <<'PYEOF'
import json, sys
d = sys.argv[1]
r = json.load(open(d + ".retrieval.json"))["retrieval"]
p = json.load(open(d + ".probe.json"))["probe"]
s = json.load(open(d + "/summary.json"))
last = {}
for line in open(d + "/metrics.jsonl"):
    j = json.loads(line)
    if "itc" in j:
        last = j
out = {"i2t_r1": r["image->text"]["r1"], "i2t_r10": r["image->text"]["r10"],
       "t2i_r1": r["text->image"]["r1"], "t2i_r10": r["text->image"]["r10"],
       "probe_image": p["image"]["top1"], "probe_text": p["text"]["top1"], "probe_audio": p.get("audio", {}).get("top1"),
       "train_seconds": s["seconds"], "steps": s["steps"], "best_step": s.get("best_step"),
       "last_terms": {k: v for k, v in last.items() if k in ("itc", "itm", "itm_acc", "mlm", "mrfr", "mrc", "mrc_acc")},
       "uptime_after": sys.argv[2].strip()}
json.dump(out, open(d + ".json", "w"), indent=1)
PYEOF
}

if [ "${TABLE_ONLY:-0}" != 1 ]; then
  for seed in $SEEDS; do
    for row in $ROWS; do train_eval "$row" "$seed"; done
  done
fi

/usr/bin/python3 - "$OUT" <<'PYEOF'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
names = {"itc": "ITC", "itc_itm": "ITC + ITM", "itc_itm_mlm": "ITC + ITM + MLM", "mrfr": "ITC + ITM + MLM + MRFR",
         "mrc": "ITC + ITM + MLM + MRC", "all": "ITC + ITM + MLM + MRFR + MRC"}
runs = {}
for p in glob.glob(os.path.join(out, "*_s*.json")):
    m = re.fullmatch(r"(.+)_s(\d+)\.json", os.path.basename(p))
    if m and m.group(1) in names:
        runs.setdefault(m.group(1), {})[int(m.group(2))] = json.load(open(p))

def cell(vals, pct=True):
    f = 100 if pct else 1
    if len(vals) == 1:
        return f"{f * vals[0]:.1f}" if pct else f"{vals[0]:.0f}"
    return f"{f * statistics.mean(vals):.1f} ± {f * statistics.stdev(vals):.1f}" if pct else f"{statistics.mean(vals):.0f}"

print("| objectives | seeds | image→text R@1 | image→text R@10 | text→image R@1 | text→image R@10 | probe image top-1 | probe text top-1 | train s |")
print("|---|---|---|---|---|---|---|---|---|")
for row in names:
    if row not in runs:
        continue
    rs = [runs[row][s] for s in sorted(runs[row])]
    cols = [cell([r[k] for r in rs]) for k in ("i2t_r1", "i2t_r10", "t2i_r1", "t2i_r10", "probe_image", "probe_text")]
    print(f"| {names[row]} | {' '.join(map(str, sorted(runs[row])))} | " + " | ".join(cols) +
          f" | {cell([r['train_seconds'] for r in rs], False)} |")
PYEOF
