#!/usr/bin/env bash
# braid vs PyTorch speed of the Llama-family language model (issue 15, "Parity and speed").
#
# `braid bench lm` (apps/braid/tools/lm_bench.cpp) builds a randomly initialised nn::lm::CausalLM and times
# training steps (forward, next-token cross-entropy, backward, AdamW) -> tokens/s, and greedy generation
# (nn::lm::generate, no stop tokens: always NEW_TOKENS tokens per row) at batch 1 and 8, with and without the
# KV cache -> new tokens/s. bench/peer/lm_peer.py is the same model in plain PyTorch (Debian python3-torch
# 1.13 under /usr/bin/python3, the same libtorch; parameter count asserted equal to braid's) with the same
# loops, the KV cache the usual Hugging Face way (past keys/values concatenated). Same config, same threads,
# rounds alternate which side runs first; ratio = median over rounds of braid / PyTorch.
#
#   bash bench/lm_speed.sh
#   THREADS=1 ROUNDS=3 bash bench/lm_speed.sh
#
# Environment: THREADS (nproc), STEPS (3: training steps and generate() calls per repeat), WARMUP (2),
#   REPEATS (5), ROUNDS (2), BRAID, OUT (temp dir, kept), LM_ARGS (model/config flags for both sides; default
#   the ~3.5 M-parameter model below).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-2}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/braid_lm_speed.XXXXXX")}
mkdir -p "$OUT"
# shellcheck disable=SC2206
LM=(${LM_ARGS:---dim 256 --layers 4 --heads 8 --kv-heads 4 --hidden 704 --vocab 1000 --seq 32 --batch 32 --prompt 16 --new-tokens 32})
COMMON=("${LM[@]}" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" --repeats "$REPEATS")

need_py 'import torch' python3-torch
need_braid bench lm
say "threads $THREADS, steps $STEPS, warmup $WARMUP, repeats $REPEATS, rounds $ROUNDS; results in $OUT"
say "config: ${LM[*]}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

run_braid_lm() {
  say "== round $1: braid"
  "$BRAID" bench lm "${COMMON[@]}" --json >"$OUT/lm.braid.$1.json"
}
run_peer_lm() {
  local params
  params=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["parameters"])' "$OUT/lm.braid.1.json" 2>/dev/null || echo 0)
  say "== round $1: PyTorch"
  "$PY" "$ROOT/bench/peer/lm_peer.py" "${COMMON[@]}" --expect-parameters "$params" >"$OUT/lm.torch.$1.json.tmp"
  mv "$OUT/lm.torch.$1.json.tmp" "$OUT/lm.torch.$1.json"
}
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then run_braid_lm "$round"; run_peer_lm "$round"
  else run_peer_lm "$round"; run_braid_lm "$round"; fi
done

"$PY" - "$OUT" "$ROUNDS" <<'PYEOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
KEYS = [("train_tokens_per_s", "training (tokens/s)"),
        ("gen_tokens_per_s_b1_cache", "generation B=1, KV cache (new tokens/s)"),
        ("gen_tokens_per_s_b1_nocache", "generation B=1, no cache"),
        ("gen_tokens_per_s_b8_cache", "generation B=8, KV cache"),
        ("gen_tokens_per_s_b8_nocache", "generation B=8, no cache")]
docs = {s: [json.load(open(os.path.join(out, f"lm.{s}.{r}.json"))) for r in range(1, rounds + 1)] for s in ("braid", "torch")}
b0, t0 = docs["braid"][0], docs["torch"][0]
if b0["parameters"] != t0["parameters"]:
    sys.exit(f"braid has {b0['parameters']} parameters, the PyTorch peer {t0['parameters']}")
c = b0["config"]
print(f"model: dim {c['dim']}, layers {c['layers']}, heads {c['heads']}, kv_heads {c['kv_heads']}, hidden {c['hidden']}, "
      f"vocab {c['vocab']}, {'tied' if c['tie'] else 'untied'} head: {b0['parameters']:,} parameters; training batch "
      f"{c['batch']} x seq {c['seq']}; generation: prompt {c['prompt']}, {c['new_tokens']} new tokens, greedy")
print()
print("| measure | braid | PyTorch | braid / PyTorch |")
print("| --- | ---: | ---: | ---: |")
for k, label in KEYS:
    med = {s: statistics.median(run[k] for d in docs[s] for run in d["runs"]) for s in docs}
    ratio = statistics.median(b[k] / t[k] for b, t in zip(docs["braid"], docs["torch"]))
    print(f"| {label} | {med['braid']:,.0f} | {med['torch']:,.0f} | {ratio:.2f} |")
n = sum(len(d["runs"]) for d in docs["braid"])
print()
print(f"rates: median of {n} repeats per side ({rounds} processes per side x {n // rounds} repeats of {c['steps']} "
      f"training steps / generate() calls); ratio = median over rounds of braid / PyTorch of back-to-back processes "
      f"(> 1: braid faster); threads: braid {b0['threads']}, PyTorch {t0['threads']}; AdamW: braid {b0['adamw']}, "
      f"PyTorch per-tensor loop; libtorch {b0['libtorch']}, PyTorch {t0['torch']}")
PYEOF
echo
echo "host: $(hostname); braid: $BRAID; load average before: $LOAD_BEFORE"
machine_line
