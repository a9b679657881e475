#!/usr/bin/python3
"""Golden reference fixtures for the fusion operators (tests/fusion_test.cpp, docs/fusion.md).

Run with Debian's python (python3-torch 1.13 + python3-numpy; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_fusion_goldens.py

It rewrites tests/fixtures/fusion/ from fixed seeds; running it again gives byte-identical files.

tests/fixtures/fusion/<op>.safetensors holds two cases, "m2" (two modalities) and "m3" (three). For a case C:
  C.config        the fusion's recipe map as YAML text (uint8 bytes); the C++ test builds the module from it
                  through the registry, so the options are typed once
  C.feat.<m>      input h_m [B, d_m] float32, rows of absent modalities zero
  C.present       [B, M] float32 0/1; the rows include one modality absent, only one present and none present
  C.fusion.<name> every parameter, named exactly as the C++ module's named_parameters() (strict loading)
  C.expected      the output [B, out_dim] in float64
util_dtypes.safetensors is a small file of several dtypes that the C++ reader must load.

The references are written independently of the C++ code: float64, one sample at a time, looping over
the modalities that are present, straight from the formulas in docs/fusion.md (no masking tricks).
Every fixture is < 100 KB.
"""
import itertools
import math
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # e.g. the pyenv python3 on PATH
    sys.exit(f"make_fusion_goldens.py: {e}; run it with Debian's python: /usr/bin/python3 scripts/make_fusion_goldens.py")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "fusion")
MAX_BYTES = 100 * 1024

DIMS = {"m2": [6, 5], "m3": [6, 5, 4]}
PRESENT = {
    "m2": [[1, 1], [1, 0], [0, 1], [1, 1], [0, 0], [1, 1]],
    "m3": [[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0], [1, 0, 0]],
}

# The options each operator is built with (small, non-default, so every option is exercised).
CONFIGS = {
    "sum": {"dim": 8},
    "max": {"dim": 8},
    "gmu": {"dim": 8},
    "attention": {"dim": 8, "hidden": 6},
    "tfn": {"dim": 3, "out": 7},
    "lmf": {"rank": 3, "out": 7},
    "mfb": {"k": 3, "out": 4, "dropout": 0.1, "power_eps": 1e-6},
    "graph": {"dim": 4, "hidden": 5},
}


# ---- parameters (float32, named as the C++ modules name them) ----

class Params:
    def __init__(self, gen):
        self.gen = gen
        self.p = {}

    def uniform(self, shape, bound):
        return (torch.rand(shape, generator=self.gen, dtype=torch.float64) * 2 - 1) * bound

    def linear(self, name, din, dout, bias=True):
        bound = 1 / math.sqrt(din)  # torch.nn.Linear's init range
        self.p[name + ".weight"] = self.uniform((dout, din), bound).float()
        if bias:
            self.p[name + ".bias"] = self.uniform((dout,), bound).float()

    def mlp(self, name, din, hidden, dout):  # braid::nn::MLP: seq.0 Linear, seq.1 ReLU, seq.2 Linear
        self.linear(name + ".seq.0", din, hidden)
        self.linear(name + ".seq.2", hidden, dout)

    def normal(self, name, shape, std):
        self.p[name] = (torch.randn(shape, generator=self.gen, dtype=torch.float64) * std).float()


def make_params(op, cfg, dims, gen):
    P = Params(gen)
    M = len(dims)
    if op in ("sum", "max"):
        for m, d in enumerate(dims):
            P.linear(f"proj.{m}", d, cfg["dim"])
    elif op == "gmu":
        for m, d in enumerate(dims):
            P.linear(f"hidden.{m}", d, cfg["dim"])
        P.linear("gate", sum(dims), M * cfg["dim"])
    elif op == "attention":
        for m, d in enumerate(dims):
            P.linear(f"proj.{m}", d, cfg["dim"])
        P.linear("att", cfg["dim"], cfg["hidden"])
        P.linear("score", cfg["hidden"], 1, bias=False)
    elif op == "tfn":
        for m, d in enumerate(dims):
            P.linear(f"proj.{m}", d, cfg["dim"])
        P.linear("post", (cfg["dim"] + 1) ** M, cfg["out"])
    elif op == "lmf":
        for m, d in enumerate(dims):
            P.normal(f"factor_{m}", (cfg["rank"], d + 1, cfg["out"]), 0.5)
        P.normal("fusion_weights", (cfg["rank"],), 1.0)
        P.normal("fusion_bias", (cfg["out"],), 0.1)
    elif op == "mfb":
        for p, (i, j) in enumerate(itertools.combinations(range(M), 2)):
            P.linear(f"u.{p}", dims[i], cfg["k"] * cfg["out"])
            P.linear(f"v.{p}", dims[j], cfg["k"] * cfg["out"])
    elif op == "graph":
        for m, d in enumerate(dims):
            P.linear(f"proj.{m}", d, cfg["dim"])
        subsets = all_subsets(M)
        for i in range(len(subsets) - M):
            P.mlp(f"vertex.{i}", cfg["dim"], cfg["hidden"], cfg["dim"])
        P.mlp("efficacy", sum(dims), cfg["hidden"], len(graph_edges(subsets)))
    else:
        raise ValueError(op)
    return P.p


# ---- references: float64, one sample at a time ----

def lin(W, name, x):
    y = W[name + ".weight"] @ x
    return y + W[name + ".bias"] if name + ".bias" in W else y


def mlp(W, name, x):
    return lin(W, name + ".seq.2", torch.relu(lin(W, name + ".seq.0", x)))


def softmax(s):
    e = [math.exp(v - max(s)) for v in s]
    return [v / sum(e) for v in e]


def all_subsets(M):
    return [c for k in range(1, M + 1) for c in itertools.combinations(range(M), k)]


def graph_edges(subsets):
    """(child, parent) vertex indices, parent by parent in vertex order, children in vertex order."""
    return [(c, s) for s, S in enumerate(subsets) if len(S) > 1
            for c, C in enumerate(subsets) if len(C) == len(S) - 1 and set(C) <= set(S)]


def reference(op, cfg, W, h, present):
    """h: list of [d_m] float64 for one sample; present: list of 0/1. Returns [out_dim] float64."""
    M = len(h)
    P = [m for m in range(M) if present[m]]
    if op == "sum":
        return sum((lin(W, f"proj.{m}", h[m]) for m in P), torch.zeros(cfg["dim"], dtype=torch.float64))
    if op == "max":
        if not P:
            return torch.zeros(cfg["dim"], dtype=torch.float64)
        return torch.stack([lin(W, f"proj.{m}", h[m]) for m in P]).max(0).values
    if op == "gmu":
        D = cfg["dim"]
        logits = lin(W, "gate", torch.cat(h)).view(M, D)
        z = torch.zeros(D, dtype=torch.float64)
        for u in range(D):
            g = softmax([logits[m, u].item() for m in P]) if P else []
            for gm, m in zip(g, P):
                z[u] += gm * torch.tanh(lin(W, f"hidden.{m}", h[m]))[u]
        return z
    if op == "attention":
        p = {m: lin(W, f"proj.{m}", h[m]) for m in P}
        s = [lin(W, "score", torch.tanh(lin(W, "att", p[m]))).item() for m in P]
        return sum((a * p[m] for a, m in zip(softmax(s) if P else [], P)), torch.zeros(cfg["dim"], dtype=torch.float64))
    if op == "tfn":
        t = torch.ones(1, dtype=torch.float64)
        for m in range(M):
            z = lin(W, f"proj.{m}", h[m]) if present[m] else torch.zeros(cfg["dim"], dtype=torch.float64)
            t = torch.kron(t, torch.cat([z, torch.ones(1, dtype=torch.float64)]))  # modality 1 slowest
        return torch.relu(lin(W, "post", t))
    if op == "lmf":
        z = W["fusion_bias"].clone()
        for r in range(cfg["rank"]):
            prod = torch.ones(cfg["out"], dtype=torch.float64)
            for m in range(M):
                hm = h[m] if present[m] else torch.zeros_like(h[m])
                prod = prod * (torch.cat([hm, torch.ones(1, dtype=torch.float64)]) @ W[f"factor_{m}"][r])
            z = z + W["fusion_weights"][r] * prod
        return z
    if op == "mfb":
        k, o, eps = cfg["k"], cfg["out"], cfg["power_eps"]
        outs = []
        for p, (i, j) in enumerate(itertools.combinations(range(M), 2)):
            if present[i] and present[j]:
                zt = lin(W, f"u.{p}", h[i]) * lin(W, f"v.{p}", h[j])  # dropout: identity in eval
            else:
                zt = torch.zeros(k * o, dtype=torch.float64)
            z = torch.tensor([zt[q * k:(q + 1) * k].sum().item() for q in range(o)], dtype=torch.float64)
            z = torch.sign(z) * (torch.sqrt(z.abs() + eps) - math.sqrt(eps))
            outs.append(z / max(z.norm().item(), 1e-12))
        return torch.cat(outs)
    if op == "graph":
        subsets = all_subsets(M)
        edges = graph_edges(subsets)
        D = cfg["dim"]
        alpha = torch.sigmoid(mlp(W, "efficacy", torch.cat(h)))
        v = []
        for s, S in enumerate(subsets):
            if not any(present[m] for m in S):
                v.append(torch.zeros(D, dtype=torch.float64))
            elif len(S) == 1:
                v.append(lin(W, f"proj.{S[0]}", h[S[0]]))
            else:
                acc = torch.zeros(D, dtype=torch.float64)
                for e, (c, par) in enumerate(edges):
                    if par == s and all(present[m] for m in subsets[c]):
                        acc = acc + alpha[e] * v[c]
                v.append(mlp(W, f"vertex.{s - M}", acc))
        return torch.cat(v)
    raise ValueError(op)


def yaml_map(d):
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


def make_case(op, case, seed):
    cfg = dict(CONFIGS[op])
    dims = DIMS[case]
    gen = torch.Generator().manual_seed(seed)
    W32 = make_params(op, cfg, dims, gen)
    present = torch.tensor(PRESENT[case], dtype=torch.float32)
    B = present.shape[0]
    feats = [torch.randn((B, d), generator=gen, dtype=torch.float64).float() * present[:, m:m + 1]
             for m, d in enumerate(dims)]
    W = {k: v.double() for k, v in W32.items()}
    rows = [reference(op, cfg, W, [f[b].double() for f in feats], [int(x) for x in present[b].tolist()])
            for b in range(B)]
    out = {f"{case}.config": np.frombuffer(yaml_map({"name": op, **cfg}).encode(), dtype=np.uint8),
           f"{case}.present": present, f"{case}.expected": torch.stack(rows)}
    for m, f in enumerate(feats):
        out[f"{case}.feat.{m}"] = f
    for k, v in W32.items():
        out[f"{case}.fusion.{k}"] = v
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for n, op in enumerate(CONFIGS):
        tensors = {}
        for c, case in enumerate(DIMS):
            tensors.update(make_case(op, case, seed=1000 + 10 * n + c))
        path = os.path.join(OUT, f"{op}.safetensors")
        save_file(tensors, path)
        assert os.path.getsize(path) < MAX_BYTES, (path, os.path.getsize(path))
        print(f"{path}: {os.path.getsize(path)} bytes")
    # several dtypes written by the python util: the C++ reader must load them with these values
    # (no 0-D tensor: safetensors_util.save_file's np.ascontiguousarray turns it into shape [1])
    path = os.path.join(OUT, "util_dtypes.safetensors")
    save_file({
        "f32": (np.arange(6, dtype=np.float32) / 4).reshape(2, 3),
        "f64": np.array([-1.5, 2.25, 1e-300], dtype=np.float64),
        "i64": np.array([-3, 2 ** 40], dtype=np.int64),
        "i32": np.array([[1, -2], [3, -4]], dtype=np.int32),
        "u8": np.array([0, 255, 7], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }, path)
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
