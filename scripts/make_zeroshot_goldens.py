#!/usr/bin/python3
"""Golden reference fixture for zero-shot classification logits (tests/align_test.cpp, docs/alignment.md).

Run with Debian's python (python3-torch 1.13 + numpy; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_zeroshot_goldens.py

It rewrites tests/fixtures/zeroshot/golden.safetensors from a fixed seed (byte-identical on rerun):
  prompts   [K, T, D] float32  text embeddings of T prompt templates per class (arbitrary scale)
  x         [N, D]    float32  query embeddings (arbitrary scale)
  labels    [N]       int64    class ids, for the top-k accuracies
  classes   [K, D]    float64  per class: each prompt L2-normalized, averaged over templates, re-normalized
  logits    [N, K]    float64  100 * cos(x, class)
  top1, top5 [1]      float64  accuracies of the logits
The reference loops over classes and templates one at a time in float64, straight from the formula.
"""
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:
    sys.exit(f"make_zeroshot_goldens.py: {e}; run it with Debian's python: /usr/bin/python3 {sys.argv[0]}")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "zeroshot")


def main():
    g = torch.Generator().manual_seed(1234)
    K, T, D, N = 7, 4, 16, 23
    prompts = (torch.randn(K, T, D, generator=g) * 3.0).float()
    x = (torch.randn(N, D, generator=g) * 2.0).float()
    labels = torch.randint(0, K, (N,), generator=g)
    classes = torch.zeros(K, D, dtype=torch.float64)
    for k in range(K):
        acc = torch.zeros(D, dtype=torch.float64)
        for t in range(T):
            p = prompts[k, t].double()
            acc += p / p.norm()
        acc /= T
        classes[k] = acc / acc.norm()
    logits = torch.zeros(N, K, dtype=torch.float64)
    for i in range(N):
        xi = x[i].double()
        xi = xi / xi.norm()
        for k in range(K):
            logits[i, k] = 100.0 * float(xi @ classes[k])
    order = logits.argsort(dim=1, descending=True)
    top1 = float((order[:, 0] == labels).double().mean())
    top5 = float((order[:, :5] == labels[:, None]).any(1).double().mean())
    os.makedirs(OUT, exist_ok=True)
    save_file({"prompts": prompts.numpy(), "x": x.numpy(), "labels": labels.numpy().astype(np.int64),
               "classes": classes.numpy(), "logits": logits.numpy(),
               "top1": np.array([top1]), "top5": np.array([top5])}, os.path.join(OUT, "golden.safetensors"))
    print(f"wrote {OUT}/golden.safetensors (top1 {top1:.4f}, top5 {top5:.4f})")


if __name__ == "__main__":
    main()
