#!/usr/bin/python3
"""PyTorch peer of braid's dual_tower (CLIP objective) with image_vit + text_transformer towers,
for speed comparisons (bench/clip_speed.sh, bench/engine.sh).

Builds the same architecture as braid's C++ modules, with the same module / parameter names
(enc_image.patch, enc_image.cls, enc_image.pos, enc_image.blocks.N.{ln1,ln2,qkv,proj,ff1,ff2},
enc_image.ln, enc_text.tok, enc_text.pos, enc_text.blocks.N..., enc_text.ln, proj_<m>.seq.K,
logit_scale) and the same parameter count (asserted), from the `model.json` that
`braid bench speed --dump DIR` writes; loads the batch braid dumped beside it and times the loops
of apps/braid/tools/speed.cpp:

  warmup x train step, then per repeat:
    steps x train step (objective = CLIP loss over the anchor pairs, backward, grad-norm clip, AdamW)
    eval mode, no grad: 1 warm forward, steps x forward(batch B), 4*steps x forward(batch 1)
  forward = the normalized embedding of the model's first modality (DualTowerImpl::forward).

It also counts the FLOPs of one training step and of one batch-B forward (torch profiler,
with_flops) and prints them as train_flops_per_step / infer_flops_per_batch.

Mirrored sources (keep in step with them):
  src/braid/nn/blocks.cpp                     TransformerBlock (pre-norm, explicit attention on 1.13), MLP, masked_mean
  src/braid/nn/encoders/image_vit.cpp         patch conv, class token, learned positions, blocks, LN, class token out
  src/braid/nn/encoders/text_transformer.cpp  token + position embedding, padding mask, blocks, LN, masked mean
  src/braid/nn/encoder.cpp                    absent rows -> zeros
  src/braid/models/dual_tower.cpp             projections, anchor pairs, logit scale, objective
  src/braid/objectives/contrastive.cpp        clip_loss (unchunked), supervised.cpp cross_entropy

Run it with Debian's interpreter (/usr/bin/python3 + python3-torch 1.13), not a pyenv python.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MLP, Encoder, load_batch, masked_mean, median, slice_batch  # noqa: E402
from flops import count_flops  # noqa: E402


SDPA = int(torch.__version__.split(".")[0]) >= 2


def padding_mask(lengths, T):
    return torch.arange(T, dtype=lengths.dtype, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


def attention(q, k, v, pad=None):
    """blocks.cpp attention(): scaled_dot_product_attention on 2.x, explicit softmax attention on 1.x."""
    if SDPA:
        if pad is None:
            return F.scaled_dot_product_attention(q, k, v)
        mask = pad.view(pad.size(0), 1, 1, pad.size(1)).logical_not()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).nan_to_num(0.0)
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if pad is not None:
        mask = pad.view(pad.size(0), 1, 1, pad.size(1))
        scores = scores.masked_fill(mask, float("-inf"))
    w = torch.softmax(scores, -1)
    if pad is not None:
        w = w.nan_to_num(0.0)
    return torch.matmul(w, v)


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, ff_mult, dropout):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff1 = nn.Linear(dim, ff_mult * dim)
        self.ff2 = nn.Linear(ff_mult * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, pad=None):
        B, T, H = x.size(0), x.size(1), self.heads
        d = self.dim // H
        qkv = self.qkv(self.ln1(x)).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
        a = attention(qkv[0], qkv[1], qkv[2], pad).transpose(1, 2).reshape(B, T, self.dim)
        h = x + self.drop(self.proj(a))
        return h + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(h)))))


class ImageViT(Encoder):
    def __init__(self, cfg, ctx):
        super().__init__()
        patch, dim = cfg.get("patch", 4), cfg.get("dim", 128)
        depth, heads = cfg.get("depth", 4), cfg.get("heads", 4)
        mlp_ratio, dropout = cfg.get("mlp_ratio", 4), cfg.get("dropout", 0.0)
        side = ctx["image_size"] // patch
        self.n_patches, self.dim = side * side, dim
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, self.n_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.out_dim = dim

    def encode(self, mb):
        x = self.patch(mb["data"]).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.size(0), 1, self.dim), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.ln(x).select(1, 0)


class TextTransformer(Encoder):
    def __init__(self, cfg, ctx):
        super().__init__()
        dim, layers = cfg.get("dim", 128), cfg.get("layers", 2)
        heads, self.max_len = cfg.get("heads", 4), cfg.get("max_len", 64)
        dropout = cfg.get("dropout", 0.1)
        self.tok = nn.Embedding(ctx["vocab_size"], dim, padding_idx=0)
        self.pos = nn.Embedding(self.max_len, dim)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, 4, dropout) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.out_dim = dim

    def encode(self, mb):
        ids, length = mb["data"], mb["lengths"]
        if ids.size(1) > self.max_len:
            ids, length = ids[:, :self.max_len], length.clamp_max(self.max_len)
        T = ids.size(1)
        x = self.tok(ids) + self.pos(torch.arange(T, dtype=ids.dtype, device=ids.device)).unsqueeze(0)
        pad = padding_mask(length, T)
        for b in self.blocks:
            x = b(x, pad)
        return masked_mean(self.ln(x), length)


ENCODERS = {"image_vit": ImageViT, "text_transformer": TextTransformer}


def cross_entropy(logits, labels, smoothing):
    logp = torch.log_softmax(logits, 1)
    nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1)
    if smoothing <= 0:
        return nll.mean()
    return ((1.0 - smoothing) * nll + smoothing * (-logp.mean(1))).mean()


def clip_loss(u, v, logit_scale, smoothing):
    s = logit_scale.reshape(()).exp().clamp_max(100.0)
    logits = torch.mm(u, v.t()) * s
    target = torch.arange(u.size(0), device=u.device)
    return 0.5 * (cross_entropy(logits, target, smoothing) + cross_entropy(logits.t(), target, smoothing))


class DualTower(nn.Module):
    def __init__(self, cfg, modalities, ctx):
        super().__init__()
        losses = cfg.get("loss", "clip")
        if losses not in ("clip", ["clip"]):
            sys.exit(f"clip_peer: loss {losses} has no PyTorch peer (only clip)")
        for key in ("projectors", "freeze"):
            if cfg.get(key):
                sys.exit(f"clip_peer: model.{key} has no PyTorch peer")
        if int(cfg.get("chunk", 0) or 0) != 0:
            sys.exit("clip_peer: model.chunk != 0 has no PyTorch peer")
        self.modalities = list(modalities)
        self.embed_dim = cfg.get("embed_dim", 128)
        pcfg = cfg.get("projection") or {}
        hidden, pdrop = pcfg.get("hidden", []) or [], pcfg.get("dropout", 0.0)
        for m in self.modalities:
            ecfg = cfg["encoders"][m]
            if ecfg.get("name") not in ENCODERS:
                sys.exit(f"clip_peer: encoder '{ecfg.get('name')}' ({m}) has no PyTorch peer")
            enc = ENCODERS[ecfg["name"]](ecfg, ctx)
            self.add_module("enc_" + m, enc)
            self.add_module("proj_" + m, MLP(enc.out_dim, hidden, self.embed_dim, pdrop))
        anchor = cfg.get("anchor", "") or ""
        if anchor:
            self.pairs = [(anchor, m) for m in self.modalities if m != anchor]
        else:
            self.pairs = [(a, b) for i, a in enumerate(self.modalities) for b in self.modalities[i + 1:]]
        self.smoothing = float(cfg.get("label_smoothing", 0.0) or 0.0)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def project(self, m, mb):
        return getattr(self, "proj_" + m)(getattr(self, "enc_" + m)(mb))

    def forward(self, batch, objective=False):
        if objective:  # (for torch.compile of the whole training objective)
            return self.objective(batch)
        for m in self.modalities:
            if batch.get(m, {}).get("data") is not None:
                return F.normalize(self.project(m, batch[m]), dim=1)
        raise RuntimeError("no modality")

    def objective(self, batch):
        emb, present = {}, {}
        for m in self.modalities:
            if batch.get(m, {}).get("data") is None:
                continue
            emb[m] = F.normalize(self.project(m, batch[m]), dim=1)
            present[m] = batch[m]["present"].to(torch.bool)
        total, n = None, 0
        for a, b in self.pairs:
            if a not in emb or b not in emb:
                continue
            both = present[a].logical_and(present[b])
            if both.sum().item() < 2:
                continue
            v = clip_loss(emb[a][both], emb[b][both], self.logit_scale, self.smoothing)
            v.item()  # dual_tower.cpp logs every term (a sync point there too)
            total = v if total is None else total + v
            n += 1
        return total / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", help="folder written by `braid bench speed --dump`")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, help="print a torch profiler table (top N ops) of 3 train steps to stderr")
    ap.add_argument("--device", default="", help="cpu | cuda (default: the device braid ran on, from model.json)")
    ap.add_argument("--precision", default="", help="fp32 | bf16 (default: braid's, from model.json)")
    ap.add_argument("--adamw", default="default", choices=["default", "foreach", "fused", "loop"],
                    help="torch.optim.AdamW implementation (default: PyTorch's own choice: foreach on CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (a reference, not the peer)")
    ap.add_argument("--trace", default="", help="after timing, write a profiler trace (Chrome JSON, CPU + CUDA) of "
                    "2 train steps + 2 inference batches here (as braid bench speed --profile)")
    ap.add_argument("--infer-only", action="store_true", help="time inference only (no training steps, no FLOP "
                    "counting; as braid bench speed --infer-only)")
    ap.add_argument("--peak", action="store_true", help="also measure the bf16/fp32 matmul peak (8192^3) on the device")
    args = ap.parse_args()

    with open(os.path.join(args.dump, "model.json")) as f:
        info = json.load(f)
    if "model_config" in info:
        cfg = info["model_config"]
    else:  # dumps of older braid builds: the YAML text only
        import yaml
        cfg = yaml.safe_load(info["model"])
    if cfg.get("name") != "dual_tower":
        sys.exit(f"clip_peer: model '{cfg.get('name')}' is not dual_tower")
    threads = args.threads if args.threads > 0 else int(info["threads"])
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device or info.get("device", "cpu"))
    precision = args.precision or info.get("precision", "fp32")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")  # noqa: E731
    modalities = info["modalities"]
    batch = load_batch(args.dump, modalities, device)
    image_size = batch["image"]["data"].size(-1) if batch.get("image", {}).get("data") is not None else 32
    model = DualTower(cfg, modalities, {"vocab_size": info.get("vocab_size", 0), "image_size": image_size})
    params = sum(p.numel() for p in model.parameters())
    if params != int(info["parameters"]):
        sys.exit(f"clip_peer: {params} parameters, braid has {info['parameters']}: the architectures differ")
    model.to(device)
    B = next(mb["present"].size(0) for mb in batch.values())
    one = slice_batch(batch, 1)

    kw = {} if args.adamw == "default" else {"foreach": args.adamw == "foreach", "fused": args.adamw == "fused"}
    opt = torch.optim.AdamW(model.parameters(), lr=float(info["lr"]), weight_decay=float(info["weight_decay"]), **kw)
    clip = float(info["grad_clip"])
    run = torch.compile(model) if args.compile else model
    objective = run.objective if not args.compile else (lambda b: run(b, objective=True))
    forward = run

    def step():
        with autocast():
            loss = objective(batch)
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    def infer(b):
        with autocast():
            return forward(b)

    model.train()
    for _ in range(0 if args.infer_only else args.warmup):
        step()
    sync()
    train_flops, train_ops, infer_flops = None, {}, None
    if not args.compile and not args.infer_only:  # (the counting mode would make torch.compile recompile; the eager run counts)
        train_flops, train_ops = count_flops(step)
        model.eval()
        with torch.no_grad():
            infer_flops, _ = count_flops(lambda: infer(batch))
    if args.profile > 0:
        model.train()
        with torch.autograd.profiler.profile() as prof:
            for _ in range(3):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile), file=sys.stderr)

    train, infer_b, infer_1, runs = [], [], [], []
    for _ in range(args.repeats):
        if not args.infer_only:
            model.train()
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync()
            train.append(args.steps / (time.perf_counter() - t0))
        model.eval()
        with torch.no_grad():
            infer(batch)
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                infer(batch)
            sync()
            infer_b.append(args.steps * B / (time.perf_counter() - t0))
            n1 = args.steps * 4
            t0 = time.perf_counter()
            for _ in range(n1):
                infer(one)
            sync()
            infer_1.append(n1 / (time.perf_counter() - t0))
        runs.append({"infer_samples_per_s_b64": infer_b[-1], "infer_samples_per_s_b1": infer_1[-1],
                     **({} if args.infer_only else {"train_steps_per_s": train[-1]})})
    if args.trace:
        from torch.profiler import ProfilerActivity, profile
        model.train()
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            for _ in range(2):
                step()
            model.eval()
            with torch.no_grad():
                for _ in range(2):
                    infer(batch)
            sync()
        prof.export_chrome_trace(args.trace)
    print(json.dumps({"train_steps_per_s": median(train) if train else None, "infer_samples_per_s_b64": median(infer_b),
                      "infer_samples_per_s_b1": median(infer_1), "runs": runs, "threads": torch.get_num_threads(),
                      "parameters": params, "batch_size": B, "steps": args.steps, "repeats": args.repeats,
                      "train_flops_per_step": train_flops, "infer_flops_per_batch": infer_flops,
                      "train_flops_by_op": train_ops, "torch": torch.__version__, "device": str(device),
                      "precision": precision, "adamw": args.adamw, "compile": args.compile,
                      **(measure_peak(device) if args.peak else {})}))


def measure_peak(device, n=8192, reps=20):
    """Median TFLOP/s of n x n matrix products in bf16 and fp32 (TF32 off) on `device` (n = 512 on a CPU)."""
    cuda = device.type == "cuda"
    if not cuda:
        n, reps = 512, 2
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = {}
    for name, dt in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a = torch.randn(n, n, device=device, dtype=dt)
        b = torch.randn(n, n, device=device, dtype=dt)
        rates = []
        for _ in range(5):
            torch.mm(a, b)
            sync()
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            sync()
            rates.append(2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12)
        out[f"peak_tflops_{name}"] = median(rates)
    return out


if __name__ == "__main__":
    main()
