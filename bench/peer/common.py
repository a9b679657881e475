"""Pieces the PyTorch peers share (bench/peer/clip_peer.py, fusion_peer.py): braid's blocks as they are in
src/braid/nn (masked mean, MLP, the encoder base class) and the dumped-batch loading and timing helpers
of apps/braid/tools/speed.cpp."""
import ast
import os
import sys

import torch
import torch.nn as nn


# ---- blocks (src/braid/nn/blocks.cpp, encoder.cpp) ---------------------------------------------

def masked_mean(x, lengths):
    """x [B, T, C], lengths [B] -> mean over the first lengths[b] steps, [B, C]."""
    T = x.size(1)
    steps = torch.arange(T, dtype=lengths.dtype, device=lengths.device).unsqueeze(0)
    valid = (steps < lengths.unsqueeze(1)).to(x.dtype).unsqueeze(-1)
    denom = lengths.to(x.dtype).clamp_min(1).unsqueeze(1)
    return (x * valid).sum(1) / denom


class MLP(nn.Module):
    """Linear -> ReLU (-> Dropout) per hidden width, then Linear(out)."""

    def __init__(self, d_in, hidden, d_out, dropout=0.0):
        super().__init__()
        layers, w = [], d_in
        for h in hidden:
            layers += [nn.Linear(w, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            w = h
        layers.append(nn.Linear(w, d_out))
        self.seq = nn.Sequential(*layers)

    def forward(self, x):
        return self.seq(x)


class Encoder(nn.Module):
    """src/braid/nn/encoder.cpp: features of present rows; absent rows are zero."""

    out_dim = 0

    def forward(self, mb):
        if mb.get("data") is None:
            return torch.zeros(mb["present"].size(0), self.out_dim, device=mb["present"].device)
        h = self.encode(mb)
        return h * mb["present"].to(h.dtype).unsqueeze(1)


# ---- the dumped batch and timing (apps/braid/tools/speed.cpp) -----------------------------------

NPY_DTYPES = {"<f4": torch.float32, "<f8": torch.float64, "<i8": torch.int64, "<i4": torch.int32, "|u1": torch.uint8,
              "|b1": torch.bool}


def load_npy(path):
    """A .npy file as a tensor: numpy when installed (Debian), else this reader (the GPU machine's venv)."""
    try:
        import numpy as np
        return torch.from_numpy(np.load(path))
    except ImportError:
        pass
    with open(path, "rb") as f:
        raw = f.read()
    major = raw[6]
    hlen = int.from_bytes(raw[8:10], "little") if major == 1 else int.from_bytes(raw[8:12], "little")
    start = 10 if major == 1 else 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    if header["fortran_order"] or header["descr"] not in NPY_DTYPES:
        sys.exit(f"{path}: unsupported .npy layout {header}")
    data = bytearray(raw[start + hlen:])
    dtype = NPY_DTYPES[header["descr"]]
    t = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
    return t.reshape(header["shape"]).clone()


def load_batch(d, modalities, device="cpu"):
    """The batch `braid bench speed --dump d` wrote: per modality data (None when absent), lengths, present."""
    batch = {}
    for m in modalities:
        path = os.path.join(d, m + ".npy")
        batch[m] = {
            "data": load_npy(path).to(device) if os.path.exists(path) else None,
            "lengths": load_npy(os.path.join(d, m + "_lengths.npy")).to(device),
            "present": load_npy(os.path.join(d, m + "_present.npy")).to(torch.bool).to(device),
        }
    return batch


def slice_batch(batch, n):
    return {m: {k: (v[:n] if v is not None else None) for k, v in mb.items()} for m, mb in batch.items()}


def median(v):
    return sorted(v)[len(v) // 2]  # as speed.cpp: the upper median for an even count
