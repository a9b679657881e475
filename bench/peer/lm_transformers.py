"""transformers' own LlamaForCausalLM at a braid `bench lm` shape: greedy generation tokens/s (KV cache).

Usage (the reference venv, scripts/hf/venv.sh):
  python lm_transformers.py --dim 576 --layers 30 --heads 9 --kv-heads 3 --hidden 1536 --vocab 49152 --tie \
      --prompt 16 --new-tokens 16 --threads 2 --repeats 3 --batches 1 8
Random init (speed does not depend on the values), no stop token (always NEW_TOKENS per row, as braid's
bench), `generate(do_sample=False, use_cache=True)`; prints one JSON line with the parameter count and the
median new tokens/s of REPEATS calls per batch size after one warm-up call.
"""
import argparse, json, statistics, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
for k, v in dict(dim=576, layers=30, heads=9, kv_heads=3, hidden=1536, vocab=49152, prompt=16, new_tokens=16,
                 threads=2, repeats=3, seed=0).items():
    ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
ap.add_argument("--tie", action="store_true")
ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.hidden, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, tie_word_embeddings=a.tie,
                  max_position_embeddings=max(2048, a.prompt + a.new_tokens), bos_token_id=None, eos_token_id=None,
                  pad_token_id=0)
m = LlamaForCausalLM(cfg).eval()
out = {"parameters": sum(p.numel() for p in m.parameters()), "threads": torch.get_num_threads()}
for b in a.batches:
    ids = torch.randint(4, a.vocab, (b, a.prompt))
    kw = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False, use_cache=True,
              attention_mask=torch.ones_like(ids), pad_token_id=0)
    with torch.no_grad():
        m.generate(ids, **kw)
        rates = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            g = m.generate(ids, **kw)
            rates.append(b * (g.size(1) - a.prompt) / (time.perf_counter() - t))
    out[f"gen_tokens_per_s_b{b}_cache"] = statistics.median(rates)
print(json.dumps(out))
