#!/usr/bin/python3
"""Compare two `braid embed` outputs of the same rows (e.g. fp32 vs --precision int8):
embed_compare.py A.safetensors B.safetensors [K]

Prints one JSON line: rows, max abs diff, per-row cosine (mean, min, 1st percentile), and how far the
neighbourhoods agree: the mean overlap of each row's K nearest other rows (cosine) under A and under B, and the
share of rows whose nearest neighbour is the same.
"""
import json
import struct
import sys

import numpy as np


def load(path):  # the safetensors file braid writes: vectors [N, D] float32, rows [N] int64
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    start, end = header["vectors"]["data_offsets"]
    return np.frombuffer(data[8 + n + start:8 + n + end], dtype=np.float32).reshape(header["vectors"]["shape"])


def neighbours(x, k):
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1)[:, :k]


a, b = load(sys.argv[1]), load(sys.argv[2])
k = int(sys.argv[3]) if len(sys.argv) > 3 else 10
assert a.shape == b.shape, (a.shape, b.shape)
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
na, nb = neighbours(a, k), neighbours(b, k)
overlap = np.mean([len(set(na[i]) & set(nb[i])) / k for i in range(len(a))])
print(json.dumps({"rows": len(a), "max_abs_diff": float(np.abs(a - b).max()), "cos_mean": float(cos.mean()),
                  "cos_min": float(cos.min()), "cos_p1": float(np.percentile(cos, 1)),
                  f"top{k}_overlap": float(overlap), "top1_same": float(np.mean(na[:, 0] == nb[:, 0]))}))
