"""Embed emoji images with a braid run and search an index from Python (docs/python.md).

    PYTHONPATH=build/python /usr/bin/python3 examples/python_search.py RUN MANIFEST INDEX

RUN: an align run (e.g. recipes/emoji_clip.yaml); MANIFEST: `braid data build emoji`'s manifest;
INDEX: `braid index build` over `braid embed RUN --modality image --split test`.
tests/python/test_braid.py runs exactly this file.
"""
import json
import os
import sys

import numpy as np

import braid

run_dir, manifest, index_dir = sys.argv[1:4]

run = braid.Run(run_dir)
print(f"run: task {run.task}, model {run.model}, modalities {run.modalities}")

# The test split's emoji images, by path (a uint8 array [N, H, W, 3] works too).
root = os.path.dirname(os.path.abspath(manifest))
with open(manifest, encoding="utf-8") as f:
    rows = [json.loads(line) for line in f if line.strip()]
test = [r for r in rows if r["split"] == "test"]
paths = [os.path.join(root, r["image"]) for r in test]

vectors = run.embed(images=paths)  # float32 [N, D], L2-normalized
print(f"embedded {vectors.shape[0]} images: {vectors.dtype} {list(vectors.shape)}")

# The same pictures decoded to pixels first: the same vectors.
pixels = np.stack([braid.load_image(p) for p in paths])
same = run.embed(images=pixels)
print(f"paths vs pixels: min cosine {float((vectors * same).sum(axis=1).min()):.6f}")

index = braid.Index(index_dir)  # its meta.json names the run that embedded it
print(f"index: {len(index)} {index.info['modality']} vectors of dim {index.info['dim']}")

# Search by a vector: each image finds itself first.
hits = index.search(vectors[0], k=3)
print(f"nearest to {test[0]['id']}: " + ", ".join(f"{h['id']} ({h['score']:.3f})" for h in hits))

# Search by text, embedded by the run's text tower.
query = test[0]["text"]["en"]
print(f"text query: {query!r}")
for h in index.search(text=query, k=5):
    print(f"  {h['rank']}  {h['score']:+.3f}  {h['id']:<24} {h['label']}")
