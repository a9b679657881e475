#!/usr/bin/env bash
# braid vs PyTorch speed on a small CLIP (issue 5): ViT + text Transformer dual tower, ~11.6 M parameters.
#
# `braid bench speed recipes/emoji_clip.yaml` with the overrides below (image + text only, anchor image,
# ViT dim 256 / depth 8 / patch 8 on 32-px images = 17 tokens, text Transformer dim 256 / 6 layers over
# <= 24 sentencepiece tokens, batch 32) times training steps (CLIP objective + backward + clip + AdamW) and
# inference (DualTower::forward = the normalized embedding of the first modality, the image tower);
# bench/peer/clip_peer.py builds the same model in PyTorch (same names and parameter count, asserted),
# loads the same dumped batch and times the same loops. The sgemm peak is measured in the same run
# (braid bench gemm) and achieved GFLOP/s = FLOPs per step (counted by the peer) x steps/s.
#
#   bash bench/clip_speed.sh
#   THREADS=1 REPEATS=7 bash bench/clip_speed.sh
#
# Environment: THREADS (nproc), STEPS (3), WARMUP (1), REPEATS (5), ROUNDS (2), BRAID, DATA
#   (data/emoji/manifest.jsonl, built when missing), OUT (temp dir, kept), PROFILE (0: rows of a torch
#   profiler table of the peer's train step, printed to stderr).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_clip_speed.XXXXXX")}
mkdir -p "$OUT"
CLIP_DATA=${DATA:-$ROOT/data/emoji/manifest.jsonl}
CLIP_RECIPE=$ROOT/recipes/emoji_clip.yaml
CLIP_SETS=(
  --set 'model.modalities=[image, text]'
  --set 'model.anchor=image'
  --set 'model.encoders.image={name: image_vit, patch: 8, dim: 256, depth: 8, heads: 4, mlp_ratio: 4}'
  --set 'model.encoders.text={name: text_transformer, dim: 256, layers: 6, heads: 4, max_len: 24, dropout: 0.1}'
  --set 'train.batch_size=32'
  # one loader worker: the timed loop reuses the first batch, so no decoding should compete for the cores
  --set 'data.workers=1'
)

clip_bench() {  # the CLIP rounds (braid + peer) into $OUT/clip.*
  if [ ! -f "$CLIP_DATA" ]; then
    say "building the emoji dataset in $(dirname "$CLIP_DATA")"
    "$BRAID" data build emoji --out "$(dirname "$CLIP_DATA")" --threads "$THREADS" >&2
  fi
  speed_pair clip "$CLIP_RECIPE" "$CLIP_DATA" "$ROOT/bench/peer/clip_peer.py" "${CLIP_SETS[@]}"
  if [ "${PROFILE:-0}" -gt 0 ]; then
    "$PY" "$ROOT/bench/peer/clip_peer.py" "$OUT/clip" --threads "$THREADS" --steps 1 --warmup 1 --repeats 1 \
      --profile "$PROFILE" >/dev/null
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  bench_setup
  say "threads $THREADS, steps $STEPS, warmup $WARMUP, repeats $REPEATS, rounds $ROUNDS; results in $OUT"
  gemm_peak
  clip_bench
  speed_table clip
  machine_line
fi
