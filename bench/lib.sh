# bench/lib.sh — shell functions shared by bench/clip_speed.sh and bench/engine.sh (source it).
#
# Before sourcing: ROOT (the repository). Uses/sets: PY, BRAID, THREADS, STEPS, WARMUP, REPEATS,
# ROUNDS, OUT. Pattern (as bench/fusion_speed.sh): `braid bench speed RECIPE --dump DIR --json`
# times braid and dumps its first training batch + model.json; a PyTorch peer under /usr/bin/python3
# (Debian python3-torch 1.13, the same libtorch) builds the same model (parameter count asserted),
# loads the same tensors and times the same loops with the same threads. Rounds alternate which
# side runs first; ratio = median over rounds of braid / PyTorch of the two back-to-back processes.

PY=/usr/bin/python3
BRAID=${BRAID:-$ROOT/build/apps/braid/braid}
THREADS=${THREADS:-$(nproc)}

say() { printf '%s\n' "$*" >&2; }

need_py() {  # need_py "import a, b" DEB_PACKAGE...: apt-get install the packages when $PY cannot import them
  local probe=$1; shift
  if ! "$PY" -c "$probe" 2>/dev/null; then
    say "installing $* with apt (for $PY)"
    local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
  fi
}

need_braid() {  # need_braid SUBCOMMAND...: build braid (cmake + ninja) unless `braid SUBCOMMAND --help` works
  if ! "$BRAID" "$@" --help >/dev/null 2>&1; then
    say "building braid in $ROOT/build"
    if [ -f "$ROOT/build/CMakeCache.txt" ]; then cmake "$ROOT/build" >&2
    else cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2; fi
    cmake --build "$ROOT/build" --target braid >&2
    BRAID=$ROOT/build/apps/braid/braid
  fi
}

bench_setup() {  # the peer's interpreter (apt when missing) and braid (cmake + ninja when missing)
  need_py 'import torch, numpy, yaml' python3-torch python3-numpy python3-yaml
  need_braid bench speed
  # braid picks OpenBLAS's kernels itself when OpenBLAS sees a generic core (apps/braid/main.cpp); the peers run
  # with the same choice, so that both sides use the same BLAS kernels
  if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    local core
    core=$("$BRAID" -v list fusions 2>&1 >/dev/null | sed -n "s/.*OpenBLAS core: \([A-Za-z0-9]*\) (braid's choice.*/\1/p" | head -n 1)
    if [ -n "$core" ]; then export OPENBLAS_CORETYPE=$core; say "OPENBLAS_CORETYPE=$core for every side (OpenBLAS saw a generic core)"; fi
  fi
}

gemm_peak() {  # writes $OUT/gemm.json (braid bench gemm: median sgemm GFLOP/s at n=1024, THREADS threads)
  say "== sgemm peak (braid bench gemm --threads $THREADS)"
  "$BRAID" bench gemm --threads "$THREADS" --repeats 5 --json >"$OUT/gemm.json"
  rm -f "$OUT/gemm_unset.json"
  if [ -n "${OPENBLAS_CORETYPE:-}" ]; then  # OpenBLAS's own kernel choice too, for the record
    env -u OPENBLAS_CORETYPE BRAID_OPENBLAS_CORETYPE=0 "$BRAID" bench gemm --threads "$THREADS" --repeats 5 --json >"$OUT/gemm_unset.json"
  fi
}

# speed_pair NAME RECIPE DATA PEER [--set ...]: ROUNDS rounds of braid + peer, alternating order.
speed_pair() {
  local name=$1 recipe=$2 data=$3 peer=$4; shift 4
  local round
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
      _run_braid "$name" "$round" "$recipe" "$data" "$@"; _run_peer "$name" "$round" "$peer"
    else
      _run_peer "$name" "$round" "$peer"; _run_braid "$name" "$round" "$recipe" "$data" "$@"
    fi
  done
}
_run_braid() {
  local name=$1 round=$2 recipe=$3 data=$4; shift 4
  say "== $name round $round: braid"
  "$BRAID" bench speed "$recipe" --data "$data" "$@" --threads "$THREADS" --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" --dump "$OUT/$name" --json >"$OUT/$name.braid.$round.json"
}
_run_peer() {  # _run_peer NAME ROUND PEER [PEER-ARGS...] -> $OUT/NAME.torch.ROUND.json (PEER_LIMIT: a time limit)
  local name=$1 round=$2 peer=$3; shift 3
  say "== $name round $round: PyTorch $*"
  ${PEER_LIMIT:+timeout "$PEER_LIMIT"} "$PY" "$peer" "$OUT/$name" --threads "$THREADS" --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" "$@" >"$OUT/$name.torch.$round.json.tmp" ||
    { rm -f "$OUT/$name.torch.$round.json.tmp"; return 1; }
  mv "$OUT/$name.torch.$round.json.tmp" "$OUT/$name.torch.$round.json"
}

speed_table() {  # speed_table NAME...: markdown tables (rates, ratios, GFLOP/s vs the sgemm peak)
  "$PY" "$ROOT/bench/peer/speed_table.py" "$OUT" "$ROUNDS" "$@"
}

machine_line() {
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} (BLAS: $(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo '?'))"
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}
