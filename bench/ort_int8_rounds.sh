#!/usr/bin/env bash
# int8 against int8 (issue 19): braid bench speed --precision int8 vs ONNX Runtime 1.19.2 on its own dynamically
# quantized export (bench/peer/ort_quantize.py), with braid --prepack and ORT fp32 beside them, in ROUNDS rounds of
# back-to-back processes (order rotating), 1 thread. Reuses a finished `PARTS=ort bash bench/engine.sh` output:
#   OUT=/tmp/x PARTS=ort ... bash bench/engine.sh      # makes $OUT/onnx and the dumped batches
#   PY_ORT=venv-with-onnx-and-onnxruntime/bin/python OUT=/tmp/x ROUNDS=3 bash bench/ort_int8_rounds.sh
# Writes $OUT/q8.TOWER.SIDE.R.json (SIDE braidq | braidk | ort | ortq) and prints per-tower medians of the ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/bench/clip_speed.sh"
ROUNDS=${ROUNDS:-3}
STEPS=${ORT_STEPS:-5}
REP=${REPEATS:-3}
QPY=${PY_ORT:-python3}
export NODE_PATH=${NODE_PATH:-$HOME/.cache/braid/onnxruntime-node-1.19.2/node_modules}
[ -d "$OUT/onnx_q8" ] || "$QPY" "$ROOT/bench/peer/ort_quantize.py" "$OUT/onnx" "$OUT/onnx_q8" 2> >(grep -v WARNING >&2)
sets() { if [ "$1" = text ]; then echo 'model.modalities=[text, image]'; else echo 'model.modalities=[image, text]'; fi; }
side() {  # side TOWER SIDE FILE
  case $2 in
    braidq|braidk) local f=(--prepack); [ "$2" = braidq ] && f=(--precision int8)
      "$BRAID" bench speed "$CLIP_RECIPE" --data "$CLIP_DATA" "${CLIP_SETS[@]}" --set "$(sets "$1")" --threads 1 \
        --steps "$STEPS" --repeats "$REP" --infer-only "${f[@]}" --json 2>/dev/null | tail -1 >"$3" ;;
    ort) node "$ROOT/bench/peer/ort_tower_bench.js" "$OUT/onnx" 1 "$STEPS" "$REP" "$1" >"$3" ;;
    ortq) ORT_TOL=1 node "$ROOT/bench/peer/ort_tower_bench.js" "$OUT/onnx_q8" 1 "$STEPS" "$REP" "$1" >"$3" ;;
  esac
}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  case $((r % 2)) in 1) order="braidq ortq braidk ort" ;; *) order="ortq braidq ort braidk" ;; esac
  for tower in image text; do for s in $order; do side "$tower" "$s" "$OUT/q8.$tower.$s.$r.json"; done; done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$OUT" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ld = lambda t, s, r: json.load(open(f"{out}/q8.{t}.{s}.{r}.json"))
print("| tower | batch | braid int8 | ORT int8 | braid --prepack | ORT fp32 | braid int8 / ORT int8 | ORT int8 / ORT fp32 | ORT int8 max abs diff to fp32 peer |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for t in ("image", "text"):
    for key, b in (("infer_samples_per_s_b64", 32), ("infer_samples_per_s_b1", 1)):
        rate = {s: statistics.median(run[key] for r in range(1, rounds + 1) for run in ld(t, s, r)["runs"]) for s in ("braidq", "ortq", "braidk", "ort")}
        ratio = lambda a, o: statistics.median(ld(t, a, r)[key] / ld(t, o, r)[key] for r in range(1, rounds + 1))
        print(f"| {t} | {b} | {rate['braidq']:.1f} | {rate['ortq']:.1f} | {rate['braidk']:.1f} | {rate['ort']:.1f} | "
              f"{ratio('braidq', 'ortq'):.2f} | {ratio('ortq', 'ort'):.2f} | {ld(t, 'ortq', 1)['max_abs_diff_vs_torch']:.1e} |")
PYEOF
