#!/usr/bin/env bash
# Inference speed of a SmolLM2-135M-shaped causal LM (dim 576, 30 layers, 9 heads, 3 key/value heads, SwiGLU
# 1536, vocabulary 49,152, tied head; random init): the logits of every position of [B, SEQ] ids at B = 1 and
# 32, on THREADS threads, median of REPEATS after a warm-up, three ways in one run:
#   braid:        `braid bench lm --cases forward` (nn/lm CausalLM, the backbone `braid import hf` loads into)
#   transformers: LlamaForCausalLM(input_ids).logits (4.40.2, eager attention; the reference venv)
#   ONNX Runtime: the same transformers model exported to ONNX (opset 14, dynamic batch) by the venv's torch,
#                 run by onnxruntime-node 1.19.2 (npm, CPU; installed with --ignore-scripts into $OUT/ort)
# ORT's logits are checked against transformers' on fixed ids; the parameter counts of braid and transformers
# are checked equal. Generation (KV cache) is compared in docs/results/import_speed.md separately.
#
#   bash bench/import_speed_lm.sh        (THREADS=2 SEQ=32 REPEATS=5 OUT=/tmp/braid-import-speed-lm)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${BRAID_HF_PY:-/tmp/hfv2/bin/python}
BRAID=${BRAID:-$ROOT/build/apps/braid/braid}
THREADS=${THREADS:-2}
SEQ=${SEQ:-32}
REPEATS=${REPEATS:-5}
OUT=${OUT:-/tmp/braid-import-speed-lm}
mkdir -p "$OUT/ort"
if [ ! -f "$OUT/ort/node_modules/onnxruntime-node/package.json" ]; then
  (cd "$OUT/ort" && npm install --no-audit --no-fund --loglevel=error --ignore-scripts onnxruntime-node@1.19.2 >/dev/null)
fi
if [ ! -f "$OUT/lm.onnx" ]; then
  "$PY" - "$OUT" "$SEQ" <<'PY' 2>/dev/null
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
out, seq = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, tie_word_embeddings=True, max_position_embeddings=2048, rope_theta=100000.0,
                  attn_implementation="eager")
m = LlamaForCausalLM(cfg).eval()
m.save_pretrained(f"{out}/hf")
class Logits(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, ids): return self.m(input_ids=ids, use_cache=False).logits
torch.onnx.export(Logits(m).eval(), (torch.randint(4, 49152, (1, seq)),), f"{out}/lm.onnx", input_names=["ids"],
                  output_names=["logits"], dynamic_axes={"ids": {0: "b"}, "logits": {0: "b"}}, opset_version=14)
PY
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; threads $THREADS; seq $SEQ"
NODE_PATH="$OUT/ort/node_modules" node "$ROOT/bench/peer/ort_lm_bench.js" "$OUT/lm.onnx" "$THREADS" "$REPEATS" "$SEQ" 1 32 > "$OUT/ort.jsonl"
"$BRAID" bench lm --dim 576 --layers 30 --heads 9 --kv-heads 3 --hidden 1536 --vocab 49152 --tie --seq "$SEQ" --batch 32 \
  --threads "$THREADS" --repeats "$REPEATS" --steps 1 --warmup 1 --cases forward --json 2>/dev/null | tail -1 > "$OUT/braid.json"
"$PY" - "$OUT" "$THREADS" "$REPEATS" "$SEQ" <<'PY'
import json, statistics, sys, time
import torch
from transformers import LlamaForCausalLM
out, threads, repeats, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
m = LlamaForCausalLM.from_pretrained(f"{out}/hf", attn_implementation="eager").eval()
ort = [json.loads(l) for l in open(f"{out}/ort.jsonl")]
braid = json.load(open(f"{out}/braid.json"))
params = sum(p.numel() for p in m.parameters())
assert braid["parameters"] == params, (braid["parameters"], params)
ids = (torch.arange(2 * seq) * 7 + 3).remainder(49152).view(2, seq)
with torch.no_grad():
    ref = m(input_ids=ids, use_cache=False).logits
diff = (torch.tensor(ort[0]["check_logits"]).view_as(ref) - ref).abs().max().item()
print(f"{params:,} parameters (braid = transformers); ORT vs transformers logits max abs diff {diff:.1e}")
print("| batch | braid tokens/s | transformers tokens/s | ORT tokens/s | braid / transformers | braid / ORT |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in ort[1:]:
    b = r["batch"]
    x = torch.randint(4, 49000, (b, seq))
    with torch.no_grad():
        m(input_ids=x, use_cache=False)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter(); m(input_ids=x, use_cache=False); ts.append(time.perf_counter() - t)
    hf = b * seq / statistics.median(ts)
    br = braid[f"forward_tokens_per_s_b{b}"]
    print(f"| {b} | {br:.1f} | {hf:.1f} | {r['tokens_per_s']:.1f} | {br / hf:.2f} | {br / r['tokens_per_s']:.2f} |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
