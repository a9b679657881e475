#!/usr/bin/env bash
# A full-size random-init SmolLM2-135M-shaped LlamaForCausalLM (transformers, the reference venv) through
# `braid import hf` and back out of `braid export`: prints the max |logit difference| between transformers and
# braid on the same ids, and both greedy continuations of a text prompt.
#
#   bash scripts/hf/lm_parity.sh [BRAID] [PYTHON] [WORK]
#     BRAID   build/apps/braid/braid      PYTHON  /tmp/hfv2/bin/python (scripts/hf/venv.sh)    WORK  /tmp/braid_lm_parity
#
# Shape (HuggingFaceTB/SmolLM2-135M config.json): vocab 49152, hidden 576, 30 layers, 9 heads, 3 kv heads,
# intermediate 1536, tied embeddings, rms_norm_eps 1e-5, rope_theta 100000, max_position_embeddings 8192,
# bos = eos = 0. Random weights (seed 0, transformers' init, std 0.02): no download. The tokenizer is the
# 400-token byte-level BPE of tests/fixtures/hf/tokenizers/smollm2 (ids < vocab; braid generate never emits an
# id past its tokenizer, so transformers' generate suppresses ids >= 400 too). ~540 MB of fp32 weights.
set -euo pipefail
BRAID=${1:-build/apps/braid/braid}
PY=${2:-/tmp/hfv2/bin/python}
WORK=${3:-/tmp/braid_lm_parity}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK" && mkdir -p "$WORK"

"$PY" - "$WORK/hf" "$ROOT/tests/fixtures/hf/tokenizers/smollm2/tokenizer.json" <<'PY'
import shutil, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, hidden_act="silu", max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
m = LlamaForCausalLM(cfg).eval()
m.save_pretrained(sys.argv[1], safe_serialization=True)
shutil.copy(sys.argv[2], sys.argv[1] + "/tokenizer.json")
print(f"transformers: {sum(p.numel() for p in m.parameters())} parameters -> {sys.argv[1]}")
PY

"$BRAID" import hf "$WORK/hf" --out "$WORK/run"
"$BRAID" export "$WORK/run" --out "$WORK/export" >/dev/null
PROMPT="The quick brown fox"
"$BRAID" generate "$WORK/run" --text "$PROMPT" --max-tokens 16 --json | tail -1 > "$WORK/braid_generate.json"

"$PY" - "$WORK" "$PROMPT" <<'PY'
import json, sys, torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM
work, prompt = sys.argv[1], sys.argv[2]
m = AutoModelForCausalLM.from_pretrained(work + "/hf", torch_dtype=torch.float32).eval()
probe = load_file(work + "/export/lm_check.safetensors")   # ids [2, 16] and braid's logits for them
with torch.no_grad():
    ref = m(probe["ids"]).logits
diff = (ref - probe["logits"]).abs().max().item()
print(f"logits [2, 16, {ref.shape[-1]}]: max |transformers - braid| = {diff:.3g} (max |logit| {ref.abs().max().item():.3g})")
# the exported folder loads in transformers too, with the same logits
m2 = AutoModelForCausalLM.from_pretrained(work + "/export/hf", torch_dtype=torch.float32).eval()
with torch.no_grad():
    print(f"exported hf/ reloaded: max |diff| vs the original = {(m2(probe['ids']).logits - ref).abs().max().item():.3g}")
tok = Tokenizer.from_file(work + "/hf/tokenizer.json")
ids = torch.tensor([tok.encode(prompt).ids])
with torch.no_grad():  # braid never emits ids its tokenizer cannot decode (here >= 400): the same suppression
    out = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False, eos_token_id=0,
                     pad_token_id=0, suppress_tokens=list(range(tok.get_vocab_size(), m.config.vocab_size)))
    out = out[0, ids.shape[1]:].tolist()
if 0 in out:
    out = out[:out.index(0)]
b = json.load(open(work + "/braid_generate.json"))["ids"]
print(f"greedy 16 tokens of {prompt!r}: transformers {out}")
print(f"                                braid        {b}  ({'identical' if out == b else 'DIFFERENT'})")
sys.exit(0 if diff <= 1e-3 and out == b else 1)
PY
