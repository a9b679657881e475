#!/usr/bin/python3
"""PyTorch peer of `braid bench lm` (apps/braid/tools/lm_bench.cpp): the same Llama-family decoder
(src/braid/nn/lm: RMSNorm, RoPE over the two halves of each head, SwiGLU, grouped-query attention, tied or
untied head, Hugging Face's initialisation N(0, 0.02)) written in plain PyTorch, timed with the same loops:

  training   forward on ids[:, :-1], next-token cross-entropy against ids[:, 1:], backward, AdamW
             (lr 1e-3, weight decay 0.01, the per-tensor loop: torch.optim.AdamW's CPU default, as braid's)
  generation greedy, always --new-tokens tokens, batch 1 and 8; with the KV cache the usual way (prefill the
             prompt, then one token a step, past keys/values concatenated), without: a full forward per step;
             logits of the last position only (as braid's generate and Hugging Face's generate)

Prints one JSON object with the same keys as `braid bench lm --json`. --expect-parameters N: exit 1 unless
the model has N parameters (bench/lm_speed.sh passes braid's count).

  /usr/bin/python3 bench/peer/lm_peer.py --threads 2 --steps 5 --repeats 5
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def half_rotate(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rope(x, cos, sin):  # x [B, n, T, d]; cos/sin [B, T, d]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + half_rotate(x) * sin


class SelfAttention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, dim, bias=False)

    def forward(self, x, cos, sin, mask, past):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if past is not None:  # concatenate the cached keys/values in front
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        present = (k, v)
        rep = self.heads // self.kv_heads
        if rep > 1:  # each kv head serves `rep` query heads
            S = k.size(2)
            k = k[:, :, None].expand(B, self.kv_heads, rep, S, self.hd).reshape(B, self.heads, S, self.hd)
            v = v[:, :, None].expand(B, self.kv_heads, rep, S, self.hd).reshape(B, self.heads, S, self.hd)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        if mask is not None:
            scores = scores + mask
        w = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(B, T, self.heads * self.hd)
        return self.o_proj(o), present


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.self_attn = SelfAttention(a.dim, a.heads, a.kv_heads)
        self.mlp = MLP(a.dim, a.hidden)
        self.input_layernorm = RMSNorm(a.dim, 1e-5)
        self.post_attention_layernorm = RMSNorm(a.dim, 1e-5)

    def forward(self, x, cos, sin, mask, past):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h)), present


class Backbone(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim, 1e-5)


class LM(nn.Module):
    def __init__(self, a, max_seq):
        super().__init__()
        self.model = Backbone(a)
        self.lm_head = None if a.tie else nn.Linear(a.dim, a.vocab, bias=False)
        hd = a.dim // a.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
        f = torch.outer(torch.arange(max_seq).float(), inv)
        emb = torch.cat((f, f), dim=-1)
        self.cos_table, self.sin_table = emb.cos(), emb.sin()  # plain attributes: not parameters
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "norm" in name:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)

    def forward(self, ids, past=None, last_only=False):
        """ids [B, T] after P cached steps (past: one (k, v) per layer, or None) -> logits [B, T, V] (last_only:
        [B, 1, V], as Hugging Face's generate asks for), new past."""
        B, T = ids.shape
        P = 0 if past is None else past[0][0].size(2)
        pos = torch.arange(P, P + T)
        cos, sin = self.cos_table[pos].expand(B, T, -1), self.sin_table[pos].expand(B, T, -1)
        mask = None
        if T > 1:  # causal: query P + t sees keys 0 .. P + t (one new token sees everything: no mask)
            mask = torch.full((T, P + T), torch.finfo(torch.float32).min).triu(P + 1)[None, None]
        h = self.model.embed_tokens(ids)
        presents = []
        for i, layer in enumerate(self.model.layers):
            h, pr = layer(h, cos, sin, mask, None if past is None else past[i])
            presents.append(pr)
        h = self.model.norm(h)
        if last_only:
            h = h[:, -1:]
        logits = self.lm_head(h) if self.lm_head is not None else F.linear(h, self.model.embed_tokens.weight)
        return logits, presents


@torch.no_grad()
def generate(lm, prompt, new_tokens, use_cache):
    """Greedy, exactly new_tokens tokens per row -> [B, new_tokens]."""
    out = []
    if use_cache:
        logits, past = lm(prompt, last_only=True)
        for s in range(new_tokens):
            tok = logits[:, -1].argmax(-1)
            out.append(tok)
            if s + 1 < new_tokens:
                logits, past = lm(tok[:, None], past, last_only=True)
    else:
        ids = prompt
        for s in range(new_tokens):
            logits, _ = lm(ids, last_only=True)
            tok = logits[:, -1].argmax(-1)
            out.append(tok)
            ids = torch.cat((ids, tok[:, None]), dim=1)
    return torch.stack(out, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in dict(dim=256, layers=4, heads=8, kv_heads=4, hidden=704, vocab=1000, seq=32, batch=32, prompt=16,
                     new_tokens=32, steps=5, warmup=2, repeats=5, threads=0, seed=0, expect_parameters=0).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    ap.add_argument("--tie", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads if a.threads > 0 else os.cpu_count())
    torch.manual_seed(a.seed)
    lm = LM(a, max(a.seq, a.prompt + a.new_tokens))
    params = sum(p.numel() for p in lm.parameters())
    if a.expect_parameters and params != a.expect_parameters:
        sys.exit(f"lm_peer: {params} parameters, braid has {a.expect_parameters}")

    ids = torch.randint(a.vocab, (a.batch, a.seq))
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, weight_decay=0.01)

    def step():
        logits, _ = lm(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    lm.train()
    for _ in range(a.warmup):
        step()
    train_rates, loss = [], None
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        train_rates.append(a.steps * a.batch * a.seq / (time.perf_counter() - t0))
    runs = [{"train_tokens_per_s": r} for r in train_rates]

    lm.eval()
    res, sums = {}, {}
    prompts = {B: torch.randint(a.vocab, (B, a.prompt)) for B in (1, 8)}  # shared by cached and uncached runs
    for key, B, cache in (("gen_tokens_per_s_b1_cache", 1, True), ("gen_tokens_per_s_b1_nocache", 1, False),
                          ("gen_tokens_per_s_b8_cache", 8, True), ("gen_tokens_per_s_b8_nocache", 8, False)):
        prompt = prompts[B]
        for _ in range(max(1, a.warmup)):
            toks = generate(lm, prompt, a.new_tokens, cache)
        assert toks.shape == (B, a.new_tokens)
        sums[key] = int(toks.sum())
        rates = []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                generate(lm, prompt, a.new_tokens, cache)
            rates.append(a.steps * B * a.new_tokens / (time.perf_counter() - t0))
            runs[r][key] = rates[-1]
        res[key] = statistics.median(rates)
    res.update(train_tokens_per_s=statistics.median(train_rates), runs=runs, parameters=params,
               threads=torch.get_num_threads(), adamw="loop", loss=float(loss), token_sums=sums,
               torch=torch.__version__,
               config={k: getattr(a, k) for k in ("dim", "layers", "heads", "kv_heads", "hidden", "vocab", "tie", "seq",
                                                   "batch", "prompt", "new_tokens", "steps", "warmup", "repeats",
                                                   "seed")})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
