#!/usr/bin/env bash
# bench/train_ab.sh — before/after of the CPU training kernels (nn/fused.h: dropout+residual add, GELU, attention;
# and the one-pass CPU AdamW of train/optim.h; issue 19) in one bench/engine.sh PARTS=precision run, one binary:
# given as BRAID to engine.sh, it runs every training `braid bench speed` call (the ones with --dump) twice back to
# back, with BRAID_FUSED_TRAIN=0 BRAID_ADAMW=loop (before: ATen's ops and torch::optim::AdamW) and without (after;
# the order alternates per call), keeps both JSON results in AB_OUT and prints the "after" one, so engine.sh's own
# table shows the kernels on. Every other call goes to the binary unchanged. Then
# `bench/train_ab.sh pool AB_OUT ENGINE_OUT [AB_OUT2 ENGINE_OUT2 ...]` prints, per model, braid / PyTorch autocast
# bf16 and / PyTorch fp32 before and after: medians over the rounds of the ratio to the PyTorch process of the
# same round.
#
#   AB_BRAID=build/apps/braid/braid AB_OUT=/tmp/tab BRAID=bench/train_ab.sh OUT=/tmp/eng \
#     PARTS=precision PREC_MODELS=clip THREADS=1 bash bench/engine.sh
#   bash bench/train_ab.sh pool /tmp/tab /tmp/eng
set -euo pipefail

if [ "${1:-}" = pool ]; then
  [ $# -ge 3 ] && [ $(($# % 2)) = 1 ] || { echo "usage: bench/train_ab.sh pool AB_OUT ENGINE_OUT [AB_OUT ENGINE_OUT ...]" >&2; exit 2; }
  shift
  exec python3 - "$@" <<'EOF'
import json, os, statistics, sys
runs = list(zip(sys.argv[1::2], sys.argv[2::2]))
print("| model | rounds | braid before / PyTorch bf16 | after / PyTorch bf16 | before / PyTorch fp32 | after / PyTorch fp32 | after / before |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
f = lambda v: f"{statistics.median(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})"
for model in ("clip-auto", "avmnist-auto"):
    col = {k: [] for k in ("b16", "a16", "b32", "a32", "gain")}
    for ab, eng in runs:
        n = 1
        while os.path.exists(os.path.join(eng, f"{model}.torch_bf16.{n}.json")):
            L = lambda p: json.load(open(p))["train_steps_per_s"]
            t16, t32 = L(os.path.join(eng, f"{model}.torch_bf16.{n}.json")), L(os.path.join(eng, f"{model}.torch_fp32.{n}.json"))
            b, a = L(os.path.join(ab, f"{model}.before.{n}.json")), L(os.path.join(ab, f"{model}.after.{n}.json"))
            col["b16"].append(b / t16); col["a16"].append(a / t16); col["b32"].append(b / t32); col["a32"].append(a / t32)
            col["gain"].append(a / b)
            n += 1
    if col["gain"]:
        print(f"| {model} | {len(col['gain'])} | " + " | ".join(f(col[k]) for k in ("b16", "a16", "b32", "a32", "gain")) + " |")
EOF
fi

: "${AB_BRAID:?AB_BRAID: the braid binary}" "${AB_OUT:?AB_OUT: where the before/after JSON go}"
dump="" prev=""
for a in "$@"; do
  [ "$prev" = --dump ] && dump=$a
  prev=$a
done
[ -n "$dump" ] || exec "$AB_BRAID" "$@"
model=$(basename "$dump")
mkdir -p "$AB_OUT"
n=1
while [ -e "$AB_OUT/$model.after.$n.json" ]; do n=$((n + 1)); done
order="before after"
[ $((n % 2)) = 0 ] && order="after before"
for v in $order; do
  if [ "$v" = before ]; then BRAID_FUSED_TRAIN=0 BRAID_ADAMW=loop "$AB_BRAID" "$@" >"$AB_OUT/$model.$v.$n.json.tmp"
  else "$AB_BRAID" "$@" >"$AB_OUT/$model.$v.$n.json.tmp"; fi
done
mv "$AB_OUT/$model.before.$n.json.tmp" "$AB_OUT/$model.before.$n.json"
mv "$AB_OUT/$model.after.$n.json.tmp" "$AB_OUT/$model.after.$n.json"
cat "$AB_OUT/$model.after.$n.json"
