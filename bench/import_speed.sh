#!/usr/bin/env bash
# Speed of an imported CLIP ViT-B/16 image tower: braid vs transformers (PyTorch) in one process; then (unless
# ONLY_CLIP=1) bench/import_speed_ort.sh (the same tower in ONNX Runtime) and bench/import_speed_lm.sh (the
# SmolLM2-135M-shaped LM: braid vs transformers vs ONNX Runtime).
#
#   bash bench/import_speed.sh            (THREADS=2 BATCHES="1 32" REPEATS=3 OUT=/tmp/braid-import-speed)
#
# transformers 4.40.2 builds a full-size CLIP ViT-B/16 (random init; the hub config's sizes), saved with its
# image processor config and the real CLIP tokenizer; `braid import hf` makes a run. One Python process
# (the reference venv, BRAID_HF_PY, default /tmp/hfv2/bin/python, with build/python's `braid` module) then
# times, on THREADS threads and the same 224x224 uint8 images, alternating per repeat:
#   braid:  braid.Run(run).embed(images=uint8 [B, 224, 224, 3])  (braid's preprocessing: rescale + normalise,
#           no resize at 224 px; the image tower; L2 normalisation)
#   torch:  CLIPModel.get_image_features(pixel_values [B, 3, 224, 224]) + L2 normalisation (pixels prepared
#           by CLIPImageProcessor outside the timed loop)
# Prints per batch size the median seconds per batch and images/s of each and the ratio torch / braid
# (> 1: braid faster), and the max |diff| between their embeddings. Both use the same libtorch/OpenBLAS
# (Debian's); the load average is printed before and after (the machine is shared).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${BRAID_HF_PY:-/tmp/hfv2/bin/python}
BRAID=${BRAID:-$ROOT/build/apps/braid/braid}
THREADS=${THREADS:-2}
BATCHES=${BATCHES:-"1 32"}
REPEATS=${REPEATS:-3}
OUT=${OUT:-/tmp/braid-import-speed}
mkdir -p "$OUT"
if [ ! -f "$OUT/run/model.pt" ]; then
  rm -rf "$OUT/clip" "$OUT/run"
  "$PY" "$ROOT/scripts/hf/make_tokenizer_fixtures.py" --real-clip "$OUT/cliptok" >/dev/null
  "$PY" - "$OUT" <<'EOF'
import shutil, sys, torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
out = sys.argv[1]
torch.manual_seed(0)
cfg = CLIPConfig(text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12),
                 vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                    num_hidden_layers=12, image_size=224, patch_size=16), projection_dim=512)
CLIPModel(cfg).save_pretrained(f"{out}/clip", safe_serialization=True)
CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(f"{out}/clip")
shutil.copy(f"{out}/cliptok/tokenizer.json", f"{out}/clip/")
EOF
  "$BRAID" import hf "$OUT/clip" --out "$OUT/run" >/dev/null
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; threads $THREADS"
PYTHONPATH="$ROOT/build/python" "$PY" - "$OUT" "$THREADS" "$REPEATS" $BATCHES <<'EOF'
import statistics, sys, time
import numpy as np, torch
import braid
from transformers import CLIPImageProcessor, CLIPModel
out, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
batches = [int(b) for b in sys.argv[4:]]
torch.set_num_threads(threads)
braid.set_threads(threads)
run = braid.Run(f"{out}/run", threads=threads)
model = CLIPModel.from_pretrained(f"{out}/clip").eval()
proc = CLIPImageProcessor.from_pretrained(f"{out}/clip")
rng = np.random.default_rng(0)
print(f"torch {torch.__version__}, threads braid/torch {threads}/{torch.get_num_threads()}")
print("| batch | braid s/batch | braid img/s | torch s/batch | torch img/s | torch/braid | max abs diff |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for B in batches:
    imgs = rng.integers(0, 256, (B, 224, 224, 3), dtype=np.uint8)
    pixels = proc(images=list(imgs), return_tensors="pt")["pixel_values"]
    iters = max(1, 8 // B)
    def t_braid():
        return run.embed(images=imgs)
    def t_torch():
        with torch.no_grad():
            return torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels), dim=-1)
    a, b = t_braid(), t_torch().numpy()  # warm-up, and the agreement
    tb, tt = [], []
    for _ in range(repeats):
        for f, acc in ((t_braid, tb), (t_torch, tt)):
            t0 = time.perf_counter()
            for _ in range(iters):
                f()
            acc.append((time.perf_counter() - t0) / iters)
    mb, mt = statistics.median(tb), statistics.median(tt)
    print(f"| {B} | {mb:.3f} | {B / mb:.2f} | {mt:.3f} | {B / mt:.2f} | {mt / mb:.2f} | {np.abs(a - b).max():.1e} |")
EOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# The same run goes on with the ONNX Runtime column of this tower and the SmolLM2-135M-shaped LM (braid vs
# transformers vs ONNX Runtime); ONLY_CLIP=1 stops here.
if [ "${ONLY_CLIP:-0}" != 1 ]; then
  echo; echo "## ONNX Runtime, the same CLIP image tower"
  THREADS=$THREADS BATCHES="$BATCHES" REPEATS=$REPEATS OUT=$OUT bash "$ROOT/bench/import_speed_ort.sh"
  echo; echo "## SmolLM2-135M-shaped LM, inference forward"
  THREADS=$THREADS REPEATS=$REPEATS BRAID=$BRAID bash "$ROOT/bench/import_speed_lm.sh"
fi
