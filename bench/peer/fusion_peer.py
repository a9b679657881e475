#!/usr/bin/python3
"""PyTorch peer of braid's fusion_classifier, for speed comparisons (bench/fusion_speed.sh).

Builds the same architecture as braid's C++ modules, layer for layer and with the same parameter
count, from the `model.json` that `braid bench speed --dump DIR` writes, loads the batch braid
dumped beside it (`<modality>.npy`, `<modality>_lengths.npy`, `<modality>_present.npy`,
`labels.npy`), and times the same loops as apps/braid/tools/speed.cpp:

  warmup x train step, then per repeat:
    steps x train step (forward, cross-entropy, backward, grad-norm clip, AdamW step)
    eval mode, no grad: 1 warm forward, steps x forward(batch B), 4*steps x forward(batch 1)

It prints one JSON line with the same keys as `braid bench speed --json`. It exits non-zero when
its parameter count differs from braid's (then the comparison would be between different models).
Module and parameter names follow braid's, so `--weights RUN/model.pt` loads a trained braid model
strictly (every name and shape must match) and reports its accuracy on the dumped batch: a check
that the two implementations compute the same function, not just have the same size.

Mirrored sources (keep in step with them):
  src/braid/nn/encoders/image_cnn.cpp, audio_cnn.cpp, text_bow.cpp   encoders
  src/braid/nn/encoder.cpp                                           absent rows -> zeros
  src/braid/nn/blocks.cpp                                            MLP, masked_mean
  src/braid/nn/fusion/concat.cpp, tfn.cpp, lmf.cpp                   fusion operators
  src/braid/models/fusion_classifier.cpp                             composition
  apps/braid/tools/speed.cpp                                         timing loops

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
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MLP, Encoder, load_batch as load_mods, load_npy, masked_mean, median, slice_batch  # noqa: E402
from flops import count_flops  # noqa: E402


# ---- encoders (src/braid/nn/encoders/*.cpp) -----------------------------------------------------

class ImageCNN(Encoder):
    """[B, 3, H, W] -> (conv3x3 no bias, BN, ReLU, maxpool 2) per channel entry -> mean(H, W) -> Linear."""

    def __init__(self, cfg, ctx):
        super().__init__()
        channels = cfg.get("channels", [32, 64, 128])
        self.out_dim = cfg.get("dim", 128)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        c_in = 3
        for ch in channels:
            self.convs.append(nn.Conv2d(c_in, ch, 3, padding=1, bias=False))
            self.norms.append(nn.BatchNorm2d(ch))
            c_in = ch
        self.out = nn.Linear(c_in, self.out_dim)

    def encode(self, mb):
        x = mb["data"]
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
            if x.size(2) >= 2 and x.size(3) >= 2:
                x = F.max_pool2d(x, 2)
        return self.out(x.mean((2, 3)))


class AudioCNN(Encoder):
    """[B, n_mels, T] -> conv blocks (ceil-mode pooling, lengths halved) -> mean over mels -> masked time mean -> Linear."""

    def __init__(self, cfg, ctx):
        super().__init__()
        channels = cfg.get("channels", [16, 32, 64])
        self.out_dim = cfg.get("dim", 128)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        c_in = 1
        for ch in channels:
            self.convs.append(nn.Conv2d(c_in, ch, 3, padding=1, bias=False))
            self.norms.append(nn.BatchNorm2d(ch))
            c_in = ch
        self.out = nn.Linear(c_in, self.out_dim)

    def encode(self, mb):
        x = mb["data"].unsqueeze(1)  # [B, 1, n_mels, T]
        length = mb["lengths"]
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
            if x.size(2) >= 2 and x.size(3) >= 2:
                x = F.max_pool2d(x, 2, 2, 0, 1, ceil_mode=True)
                length = torch.div(length + 1, 2, rounding_mode="floor")
        seq = x.mean(2).transpose(1, 2)  # [B, T, C]
        return self.out(masked_mean(seq, length))


class TextBow(Encoder):
    """Embedding (padding 0) -> masked mean -> MLP(embed -> [dim] -> dim)."""

    def __init__(self, cfg, ctx):
        super().__init__()
        embed = cfg.get("embed", 128)
        self.out_dim = cfg.get("dim", 128)
        self.emb = nn.Embedding(ctx["vocab_size"], embed, padding_idx=0)
        self.mlp = MLP(embed, [self.out_dim], self.out_dim, cfg.get("dropout", 0.1))

    def encode(self, mb):
        return self.mlp(masked_mean(self.emb(mb["data"]), mb["lengths"]))


ENCODERS = {"image_cnn": ImageCNN, "audio_cnn": AudioCNN, "text_bow": TextBow}


# ---- fusion (src/braid/nn/fusion/*.cpp) ---------------------------------------------------------

class Concat(nn.Module):
    def __init__(self, cfg, dims):
        super().__init__()
        self.presence_bits = cfg.get("presence_bits", True)
        self.out_dim = sum(dims) + (len(dims) if self.presence_bits else 0)

    def forward(self, feats, present):
        return torch.cat(list(feats) + ([present] if self.presence_bits else []), 1)


class TFN(nn.Module):
    """z_m = W_m h_m (absent -> 0); t = vec([z_1;1] x ... x [z_M;1]); out = ReLU(W_o dropout(t) + b_o)."""

    def __init__(self, cfg, dims):
        super().__init__()
        d = cfg.get("dim", 16)
        self.out_dim = cfg.get("out", 128)
        self.proj = nn.ModuleList([nn.Linear(dm, d) for dm in dims])
        self.drop = nn.Dropout(cfg.get("dropout", 0.0))
        self.post = nn.Linear((d + 1) ** len(dims), self.out_dim)

    def forward(self, feats, present):
        B = present.size(0)
        t = None
        for m, (lin, h) in enumerate(zip(self.proj, feats)):
            z = lin(h) * present[:, m:m + 1].to(h.dtype)
            z1 = torch.cat([z, torch.ones(B, 1, dtype=z.dtype)], 1)
            t = z1 if t is None else (t.unsqueeze(2) * z1.unsqueeze(1)).reshape(B, -1)
        return F.relu(self.post(self.drop(t)))


class LMF(nn.Module):
    """z = sum_r lambda_r * prod_m ([h_m;1] W_m^(r)) + bias, factors [R, d_m+1, out]."""

    def __init__(self, cfg, dims):
        super().__init__()
        self.rank = cfg.get("rank", 4)
        self.out_dim = cfg.get("out", 128)
        for m, dm in enumerate(dims):
            w = torch.empty(self.rank, dm + 1, self.out_dim)
            nn.init.xavier_normal_(w)
            self.register_parameter(f"factor_{m}", nn.Parameter(w))
        self.n = len(dims)
        self.fusion_weights = nn.Parameter(torch.randn(self.rank) * math.sqrt(2.0 / (1.0 + self.rank)))
        self.fusion_bias = nn.Parameter(torch.zeros(self.out_dim))

    def forward(self, feats, present):
        B = present.size(0)
        prod = None
        for m, h in enumerate(feats):
            h = h * present[:, m:m + 1].to(h.dtype)
            h1 = torch.cat([h, torch.ones(B, 1, dtype=h.dtype)], 1)
            f = torch.matmul(h1, getattr(self, f"factor_{m}"))  # [R, B, out]
            prod = f if prod is None else prod * f
        return (self.fusion_weights.view(self.rank, 1, 1) * prod).sum(0) + self.fusion_bias


FUSIONS = {"concat": Concat, "tfn": TFN, "lmf": LMF}


# ---- model (src/braid/models/fusion_classifier.cpp) --------------------------------------------

class FusionClassifier(nn.Module):
    def __init__(self, cfg, modalities, outputs, ctx):
        super().__init__()
        for key in ("modality_dropout", "aux_heads"):  # training-time extras the peer does not mirror
            if float(cfg.get(key, 0) or 0) != 0:
                sys.exit(f"fusion_peer: model.{key} = {cfg[key]} has no PyTorch peer (set it to 0)")
        self.modalities = list(modalities)
        dims = []
        for m in self.modalities:
            ecfg = cfg["encoders"][m]
            name = ecfg.get("name")
            if name not in ENCODERS:
                sys.exit(f"fusion_peer: encoder '{name}' ({m}) has no PyTorch peer (known: {', '.join(ENCODERS)})")
            enc = ENCODERS[name](ecfg, ctx)
            self.add_module("enc_" + m, enc)
            dims.append(enc.out_dim)
        fcfg = cfg.get("fusion") or {"name": "concat"}
        fname = fcfg.get("name", "concat")
        if fname not in FUSIONS:
            sys.exit(f"fusion_peer: fusion '{fname}' has no PyTorch peer (known: {', '.join(FUSIONS)})")
        self.fusion = FUSIONS[fname](fcfg, dims)
        head = cfg.get("head") or {}
        self.head = MLP(self.fusion.out_dim, head.get("hidden", [128]), outputs, head.get("dropout", 0.2))

    def forward(self, batch):
        feats = [getattr(self, "enc_" + m)(batch[m]) for m in self.modalities]
        present = torch.stack([batch[m]["present"] for m in self.modalities], 1).to(feats[0].dtype)
        return self.head(self.fusion(feats, present))


# ---- data and timing (apps/braid/tools/speed.cpp) -----------------------------------------------

def load_batch(d, modalities):
    return load_mods(d, modalities), load_npy(os.path.join(d, "labels.npy"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", help="folder written by `braid bench speed --dump`")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (default: model.json's threads)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="", choices=["", "fp32", "bf16"],
                    help="fp32 | bf16 (CPU autocast around forward + loss, as braid's AutocastScope; default: braid's, "
                         "from model.json)")
    ap.add_argument("--channels-last", action="store_true",
                    help="model and 4-d inputs in torch.channels_last (what a PyTorch user would add by hand; braid's "
                         "ConvStack is channels-last by default under CPU bf16)")
    ap.add_argument("--weights", help="a braid run's model.pt: load it (strictly: same names and shapes) and report "
                                      "the loaded model's accuracy on the dumped batch as batch_accuracy")
    args = ap.parse_args()

    with open(os.path.join(args.dump, "model.json")) as f:
        info = json.load(f)
    cfg = yaml.safe_load(info["model"])
    if cfg.get("name", "fusion_classifier") != "fusion_classifier":
        sys.exit(f"fusion_peer: model '{cfg.get('name')}' has no PyTorch peer")
    threads = args.threads if args.threads > 0 else int(info["threads"])
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    modalities = info["modalities"]
    model = FusionClassifier(cfg, modalities, int(info["outputs"]), {"vocab_size": info.get("vocab_size", 0)})
    params = sum(p.numel() for p in model.parameters())
    if params != int(info["parameters"]):
        sys.exit(f"fusion_peer: {params} parameters, braid has {info['parameters']}: the architectures differ")
    batch, labels = load_batch(args.dump, modalities)
    B = labels.size(0)
    one = slice_batch(batch, 1)
    extra = {}
    if args.weights:
        # braid's model.pt is a torch::serialize archive; its tensors carry braid's module names,
        # which the classes above reproduce (enc_<m>.convs.0.weight, head.seq.3.bias, ...).
        model.load_state_dict(torch.jit.load(args.weights).state_dict(), strict=True)
        model.eval()
        with torch.no_grad():
            extra["batch_accuracy"] = (model(batch).argmax(1) == labels).double().mean().item()

    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        for mb in list(batch.values()) + list(one.values()):
            if mb.get("data") is not None and mb["data"].dim() == 4:
                mb["data"] = mb["data"].contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=float(info["lr"]), weight_decay=float(info["weight_decay"]))
    clip = float(info["grad_clip"])
    precision = args.precision or info.get("precision", "fp32")
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")  # noqa: E731

    def step():
        with autocast():
            out = model(batch)
            loss = F.cross_entropy(out, labels)
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    def infer(b):
        with autocast():
            return model(b)

    model.train()
    for _ in range(args.warmup):
        step()
    train_flops, _ = count_flops(step)  # FLOPs of one training step and one batch-B forward (torch profiler)
    model.eval()
    with torch.no_grad():
        infer_flops, _ = count_flops(lambda: infer(batch))
    train, infer_b, infer_1, runs = [], [], [], []
    for _ in range(args.repeats):
        model.train()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        train.append(args.steps / (time.perf_counter() - t0))
        model.eval()
        with torch.no_grad():
            infer(batch)  # warm
            t0 = time.perf_counter()
            for _ in range(args.steps):
                infer(batch)
            infer_b.append(args.steps * B / (time.perf_counter() - t0))
            n1 = args.steps * 4
            t0 = time.perf_counter()
            for _ in range(n1):
                infer(one)
            infer_1.append(n1 / (time.perf_counter() - t0))
        runs.append({"train_steps_per_s": train[-1], "infer_samples_per_s_b64": infer_b[-1],
                     "infer_samples_per_s_b1": infer_1[-1]})
    print(json.dumps({"train_steps_per_s": median(train), "infer_samples_per_s_b64": median(infer_b),
                      "infer_samples_per_s_b1": median(infer_1), "runs": runs, "threads": torch.get_num_threads(),
                      "parameters": params, "batch_size": B, "steps": args.steps, "repeats": args.repeats,
                      "train_flops_per_step": train_flops, "infer_flops_per_batch": infer_flops,
                      "torch": torch.__version__, "precision": precision, "channels_last": args.channels_last,
                      **extra}))


if __name__ == "__main__":
    main()
