#!/usr/bin/env bash
# braid on the GPU machine (docs/gpu.md): build against that machine's LibTorch 2.x, run the CLIP
# ViT-B/16 training benchmark against PyTorch eager on the same GPU, the tests, and the quickstart
# on CUDA. Every stage logs to $OUT; a failing stage does not stop the later ones (but a failed
# build stops everything).
#
#   bash bench/gpu.sh                      # deps build bench quickstart test compile
#   bash bench/gpu.sh build bench          # some stages only
#   bash bench/gpu.sh build profile        # kernel times of braid and PyTorch side by side (profile.md)
#
# The benchmark: `braid bench speed recipes/emoji_clip.yaml` with the overrides in CLIP_SETS (image +
# text towers at ViT-B/16 size: 224-px images, patch 16, width 768, 12 layers, 12 heads; text
# Transformer width 512, 12 layers, 8 heads; 512-d embeddings; batch 256; bf16 autocast) on CUDA, and
# bench/peer/clip_peer.py (same model, parameter count asserted, same dumped batch) under the
# machine's python3 (PyTorch 2.x, eager, its default AdamW = foreach on CUDA). ROUNDS rounds alternate
# the order; then one braid run each with BRAID_ADAMW=foreach and =loop (what the fused optimizer
# step buys). bench/peer/gpu_table.py prints the table with MFU against the measured bf16 matmul
# peak and against the H100's 989 TFLOP/s dense bf16 datasheet figure.
#
# Environment: OUT (/tmp/braid_gpu), BUILD (/tmp/braid_build), DEPROOT (/tmp/deproot), DATA
# (.gpu-data/emoji/manifest.jsonl, else data/emoji/manifest.jsonl), THREADS (8), STEPS (10), WARMUP (3),
# REPEATS (5), ROUNDS (2), PY (python3), BATCH (256), DEVICE (cuda), PRECISION (bf16), TEST_LIMIT and
# QUICKSTART_LIMIT (seconds for those stages: 900, 1800), SCRATCH (/tmp/braid_gpu_scratch: the dumped batch).
# Through the device tool: OUT=$OUT ROUNDS=1 bash bench/gpu.sh deps build bench 2>&1 | tee $OUT/log
# Dependencies the GPU machine lacks (libsndfile, stb, pkg-config) come as Debian .debs in
# .gpu-debs/ (apt-get download on the dev machine; see docs/gpu.md), unpacked into DEPROOT.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY_GIVEN=${PY:-}
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
PY=${PY_GIVEN:-python3}  # the GPU machine's PyTorch 2.x (lib.sh's default is Debian's /usr/bin/python3)
OUT=${OUT:-/tmp/braid_gpu}
BUILD=${BUILD:-/tmp/braid_build}
DEPROOT=${DEPROOT:-/tmp/deproot}
THREADS=${THREADS:-8}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-2}
BATCH=${BATCH:-256}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
if [ -z "${DATA:-}" ]; then
  DATA=$ROOT/.gpu-data/emoji/manifest.jsonl
  [ -f "$DATA" ] || DATA=$ROOT/data/emoji/manifest.jsonl
fi
BRAID=$BUILD/apps/braid/braid
mkdir -p "$OUT"
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(deps build bench quickstart test compile)

LIBDIR=$DEPROOT/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig:$DEPROOT/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
command -v pkg-config >/dev/null || export PATH="$DEPROOT/usr/bin:$PATH"

stage_deps() {
  [ -d "$ROOT/.gpu-debs" ] || { say "no .gpu-debs/: the machine's own packages must do"; return 0; }
  mkdir -p "$DEPROOT"
  for f in "$ROOT"/.gpu-debs/*.deb; do dpkg -x "$f" "$DEPROOT"; done
  sed -i "s#^prefix=/usr\$#prefix=$DEPROOT/usr#" "$LIBDIR"/pkgconfig/*.pc
  say "unpacked $(ls "$ROOT"/.gpu-debs/*.deb | wc -l) packages into $DEPROOT"
}

stage_build() {
  local prefix cxx=()
  prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  [ -x /opt/gcc/bin/g++ ] && cxx=(-DCMAKE_CXX_COMPILER=/opt/gcc/bin/g++ -DCMAKE_C_COMPILER=/opt/gcc/bin/gcc)
  # pip's LibTorch ships fmt 12 headers in its include folder, which comes first and breaks the
  # system spdlog (built for the system fmt): put the system fmt and spdlog ahead of it with -I.
  local first=$BUILD.include
  mkdir -p "$first"
  if [ -d "$(dirname "$prefix")/../include/fmt" ] && [ -d /usr/include/fmt ]; then
    ln -sfn /usr/include/fmt "$first/fmt"
    [ -d /usr/include/spdlog ] && ln -sfn /usr/include/spdlog "$first/spdlog"
  fi
  cxx+=(-DCMAKE_CXX_FLAGS="-I$first")
  if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cxx[@]}" \
      -DCMAKE_PREFIX_PATH="$prefix;$DEPROOT/usr" -DCMAKE_LIBRARY_ARCHITECTURE=x86_64-linux-gnu \
      -DBRAID_WITH_SERVE=OFF -DBRAID_USE_CCACHE=OFF >"$OUT/cmake.log" 2>&1; then
    tail -n 40 "$OUT/cmake.log"; return 1
  fi
  if ! cmake --build "$BUILD" -j "$(nproc)" -- -k 0 >"$OUT/build.log" 2>&1; then
    grep -E -A6 'error|FAILED' "$OUT/build.log" | head -n 150; return 1
  fi
}

CLIP_SETS=(
  --set 'model.modalities=[image, text]'
  --set 'model.anchor=image'
  --set 'model.encoders.image={name: image_vit, patch: 16, dim: 768, depth: 12, heads: 12, mlp_ratio: 4}'
  --set 'model.encoders.text={name: text_transformer, dim: 512, layers: 12, heads: 8, max_len: 77, dropout: 0.0}'
  --set 'model.embed_dim=512'
  --set 'data.image.size=224'
  --set 'data.text.max_tokens=77'
  --set "train.batch_size=$BATCH"
  --set 'data.workers=4'
  --set "device=$DEVICE"
  --set "precision=$PRECISION"
)

stage_bench() {
  local recipe=$ROOT/recipes/emoji_clip.yaml impl
  # the dumped batch (154 MB of images at batch 256) stays out of $OUT, which the device tool ships back
  if [ ! -e "$OUT/gpuclip" ]; then
    mkdir -p "${SCRATCH:-/tmp/braid_gpu_scratch}/gpuclip"
    ln -s "${SCRATCH:-/tmp/braid_gpu_scratch}/gpuclip" "$OUT/gpuclip"
  fi
  speed_pair gpuclip "$recipe" "$DATA" "$ROOT/bench/peer/clip_peer.py" "${CLIP_SETS[@]}"
  "$PY" "$ROOT/bench/peer/clip_peer.py" "$OUT/gpuclip" --threads "$THREADS" --steps 1 --warmup 1 --repeats 1 \
    --peak >"$OUT/gpuclip.peak.json"
  for impl in foreach loop; do
    say "== gpuclip: braid with BRAID_ADAMW=$impl"
    BRAID_ADAMW=$impl "$BRAID" bench speed "$recipe" --data "$DATA" "${CLIP_SETS[@]}" --threads "$THREADS" \
      --steps "$STEPS" --warmup "$WARMUP" --repeats "$REPEATS" --json >"$OUT/gpuclip.braid_$impl.json"
  done
  _run_peer gpuclip fused "$ROOT/bench/peer/clip_peer.py" --adamw fused
  gpu_table
}

gpu_table() { "$PY" "$ROOT/bench/peer/gpu_table.py" "$OUT" "$ROUNDS" | tee "$OUT/gpu_table.md"; }

# where the time goes: a profiler trace of 2 training steps + 2 inference batches from braid and from the
# PyTorch peer on the same batch (traces in SCRATCH), their kernels side by side in $OUT/profile.md
stage_profile() {
  local recipe=$ROOT/recipes/emoji_clip.yaml dir=${SCRATCH:-/tmp/braid_gpu_scratch}
  mkdir -p "$dir/gpuclip"
  "$BRAID" bench speed "$recipe" --data "$DATA" "${CLIP_SETS[@]}" --threads "$THREADS" --steps 3 --warmup 3 \
    --repeats 1 --dump "$dir/gpuclip" --profile "$dir/braid_trace.json" --json >"$OUT/profile.braid.json" || return 1
  "$PY" "$ROOT/bench/peer/clip_peer.py" "$dir/gpuclip" --threads "$THREADS" --steps 3 --warmup 3 --repeats 1 \
    --trace "$dir/torch_trace.json" >"$OUT/profile.torch.json" || return 1
  "$PY" "$ROOT/bench/peer/trace_table.py" "$dir/braid_trace.json" "$dir/torch_trace.json" 40 | tee "$OUT/profile.md"
}

# the torch.compile reference (compiling costs a minute or two; run after the bench stage)
stage_compile() {
  PEER_LIMIT=${COMPILE_LIMIT:-300} _run_peer gpuclip compile "$ROOT/bench/peer/clip_peer.py" --compile --adamw fused &&
    gpu_table
}

stage_test() {
  (cd "$BUILD" && timeout "${TEST_LIMIT:-900}" ctest -LE 'slow|browser' -j 8 --timeout 300 --output-on-failure) \
    >"$OUT/ctest.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/ctest.log"
  return $rc
}

stage_quickstart() {
  timeout "${QUICKSTART_LIMIT:-1800}" "$BRAID" quickstart --data "$(dirname "$DATA")" --out "$OUT/quickstart" \
    --device "$DEVICE" --threads "$THREADS" 2>"$OUT/quickstart.log"
}

say "$(nvidia-smi -L 2>/dev/null || echo 'no nvidia-smi'); torch $("$PY" -c 'import torch; print(torch.__version__)' 2>&1)"
status=0
for s in "${STAGES[@]}"; do
  say "=== stage $s ($(date +%T))"
  t0=$(date +%s)
  if "stage_$s"; then say "=== stage $s passed in $(( $(date +%s) - t0 )) s"
  else
    status=1
    say "=== stage $s FAILED after $(( $(date +%s) - t0 )) s"
    [ "$s" = build ] && exit 1
  fi
done
exit $status
