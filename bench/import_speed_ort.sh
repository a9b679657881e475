#!/usr/bin/env bash
# ONNX Runtime column of bench/import_speed.sh: the same full-size CLIP ViT-B/16 image tower (the random-init
# transformers model that import_speed.sh saved in $OUT/clip and braid imported), exported to ONNX (opset 14,
# the L2-normalised get_image_features, dynamic batch) by the reference venv's torch, timed by
# onnxruntime-node 1.19.2 (npm; its CPU library; installed into $OUT/ort with --ignore-scripts, which skips
# the package's optional CUDA download) on THREADS intra-op threads, median of REPEATS after a warm-up.
# Checks ORT's embeddings against transformers' on fixed pixels first. Run bench/import_speed.sh before.
#
#   bash bench/import_speed_ort.sh        (THREADS=2 BATCHES="1 32" REPEATS=5 OUT=/tmp/braid-import-speed)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${BRAID_HF_PY:-/tmp/hfv2/bin/python}
THREADS=${THREADS:-2}
BATCHES=${BATCHES:-"1 32"}
REPEATS=${REPEATS:-5}
OUT=${OUT:-/tmp/braid-import-speed}
[ -f "$OUT/clip/config.json" ] || { echo "no $OUT/clip: run bench/import_speed.sh first" >&2; exit 2; }
mkdir -p "$OUT/ort"
if [ ! -f "$OUT/ort/node_modules/onnxruntime-node/package.json" ]; then
  (cd "$OUT/ort" && npm install --no-audit --no-fund --loglevel=error --ignore-scripts onnxruntime-node@1.19.2 >/dev/null)
fi
if [ ! -f "$OUT/ort/clip_vision.onnx" ]; then
  "$PY" - "$OUT" <<'PY' 2>/dev/null
import sys, torch
from transformers import CLIPModel
out = sys.argv[1]
m = CLIPModel.from_pretrained(f"{out}/clip").eval()
class Tower(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, x):
        f = self.m.get_image_features(pixel_values=x)
        return f / f.norm(dim=-1, keepdim=True)
torch.onnx.export(Tower(m).eval(), (torch.randn(1, 3, 224, 224),), f"{out}/ort/clip_vision.onnx",
                  input_names=["pixels"], output_names=["emb"],
                  dynamic_axes={"pixels": {0: "b"}, "emb": {0: "b"}}, opset_version=14)
PY
fi
export NODE_PATH="$OUT/ort/node_modules"
node "$ROOT/bench/peer/ort_clip_check.js" "$OUT/ort/clip_vision.onnx" > "$OUT/ort/check.json"
"$PY" - "$OUT" <<'PY'
import json, sys, torch
from transformers import CLIPModel
out = sys.argv[1]
m = CLIPModel.from_pretrained(f"{out}/clip").eval()
x = torch.sin(torch.arange(2 * 3 * 224 * 224, dtype=torch.float64) * 0.001).float().view(2, 3, 224, 224)
with torch.no_grad():
    f = m.get_image_features(pixel_values=x)
    f = f / f.norm(dim=-1, keepdim=True)
o = torch.tensor(json.load(open(f"{out}/ort/check.json"))).view_as(f)
print(f"ORT vs transformers embeddings: max abs diff {(o - f).abs().max().item():.1e}")
PY
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS"
# shellcheck disable=SC2086
node "$ROOT/bench/peer/ort_clip_bench.js" "$OUT/ort/clip_vision.onnx" "$THREADS" "$REPEATS" $BATCHES
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
