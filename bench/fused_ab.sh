#!/usr/bin/env bash
# bench/fused_ab.sh — before/after of the fused inference kernels (nn/fused_infer.h, issue 19) inside one
# bench/engine.sh PARTS=ort run, with one binary: given as BRAID to engine.sh, it runs every `braid bench speed
# --prepack` call twice back to back, with BRAID_FUSED_INFER=0 (before) and without (after; the order alternates
# per call), keeps both JSON results in AB_OUT and prints the "after" one, so engine.sh's own table shows the
# kernels on. Every other call goes to the binary unchanged. Then `bench/fused_ab.sh pool AB_OUT ENGINE_OUT
# [AB_OUT2 ENGINE_OUT2 ...]` prints braid --prepack / ORT before and after per tower and batch: the median over
# the rounds (of all runs given) of the ratio to the ORT process of the same round.
#
#   AB_BRAID=build/apps/braid/braid AB_OUT=/tmp/ab BRAID=bench/fused_ab.sh OUT=/tmp/eng \
#     PARTS=ort THREADS=1 ORT_ROUNDS=3 ORT_STEPS=5 REPEATS=3 ORT_BUSY=0 bash bench/engine.sh
#   bash bench/fused_ab.sh pool /tmp/ab /tmp/eng
#
# AB_BEFORE=BINARY: "before" runs that binary as it is (kernels on) instead of AB_BRAID with BRAID_FUSED_INFER=0,
# for a before/after of two builds (the pool table's "before" column is then that binary).
set -euo pipefail

if [ "${1:-}" = pool ]; then
  [ $# -ge 3 ] && [ $(($# % 2)) = 1 ] || { echo "usage: bench/fused_ab.sh pool AB_OUT ENGINE_OUT [AB_OUT ENGINE_OUT ...]" >&2; exit 2; }
  shift
  exec python3 - "$@" <<'EOF'
import json, os, statistics, sys
runs = list(zip(sys.argv[1::2], sys.argv[2::2]))
print("| tower | batch | rounds | braid --prepack / ORT, before (BRAID_FUSED_INFER=0) | after | after / before |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for tower in ("image", "text"):
    for key, lab in (("infer_samples_per_s_b64", "32"), ("infer_samples_per_s_b1", "1")):
        bef, aft, gain = [], [], []
        for ab, eng in runs:
            n = 1
            while os.path.exists(os.path.join(eng, f"ort.{tower}.ort.{n}.json")):
                L = lambda p: json.load(open(p))[key]
                o = L(os.path.join(eng, f"ort.{tower}.ort.{n}.json"))
                b, a = L(os.path.join(ab, f"{tower}.before.{n}.json")), L(os.path.join(ab, f"{tower}.after.{n}.json"))
                bef.append(b / o); aft.append(a / o); gain.append(a / b); n += 1
        if not bef:
            continue
        f = lambda v: f"{statistics.median(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})"
        print(f"| {tower} | {lab} | {len(bef)} | {f(bef)} | {f(aft)} | {f(gain)} |")
EOF
fi

: "${AB_BRAID:?AB_BRAID: the braid binary}" "${AB_OUT:?AB_OUT: where the before/after JSON go}"
prepack=0 tower=image
for a in "$@"; do
  case $a in
    --prepack) prepack=1 ;;
    "model.modalities=[text"*) tower=text ;;
  esac
done
[ "$prepack" = 1 ] || exec "$AB_BRAID" "$@"
mkdir -p "$AB_OUT"
n=1
while [ -e "$AB_OUT/$tower.after.$n.json" ]; do n=$((n + 1)); done
order="before after"
[ $((n % 2)) = 0 ] && order="after before"
for v in $order; do
  if [ "$v" = before ] && [ -n "${AB_BEFORE:-}" ]; then "$AB_BEFORE" "$@" >"$AB_OUT/$tower.$v.$n.json.tmp"
  elif [ "$v" = before ]; then BRAID_FUSED_INFER=0 "$AB_BRAID" "$@" >"$AB_OUT/$tower.$v.$n.json.tmp"
  else "$AB_BRAID" "$@" >"$AB_OUT/$tower.$v.$n.json.tmp"; fi
done
mv "$AB_OUT/$tower.before.$n.json.tmp" "$AB_OUT/$tower.before.$n.json"
mv "$AB_OUT/$tower.after.$n.json.tmp" "$AB_OUT/$tower.after.$n.json"
cat "$AB_OUT/$tower.after.$n.json"
