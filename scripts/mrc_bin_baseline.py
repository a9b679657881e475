#!/usr/bin/python3
"""Reference points for single_tower's MRC and MRFR terms on an emoji manifest (issue 20).

Decodes the train split's images roughly as recipes/emoji_single_tower.yaml does (RGBA composited on
white, resized to 32 px with PIL's bilinear filter -- braid's own resize may differ in the last bit),
cuts them into 8-px patches and prints, over all patches (MRC and MRFR mask patches uniformly):
  - the share of the most frequent colour bin (mean RGB, 4 bins per channel, id = r*16 + g*4 + b):
    the MRC accuracy of always answering that bin;
  - the MSE (normalized pixels, mean 0.5 / std 0.5) of predicting every masked patch's pixels by the
    train split's mean patch at that position: an MRFR value that needs no context at all.

    /usr/bin/python3 scripts/mrc_bin_baseline.py data/emoji/manifest.jsonl
"""
import collections
import json
import os
import sys

import numpy as np
from PIL import Image

SIZE, PATCH, BINS = 32, 8, 4


def main():
    manifest = sys.argv[1]
    root = os.path.dirname(manifest)
    pix = []
    for line in open(manifest):
        s = json.loads(line)
        if s.get("split") != "train" or not s.get("image"):
            continue
        im = Image.open(os.path.join(root, s["image"])).convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        pix.append(np.asarray(im, dtype=np.float32) / 255.0)
    x = np.stack(pix)  # [n, 32, 32, 3] in [0, 1]
    n, side = len(x), SIZE // PATCH
    patches = x.reshape(n, side, PATCH, side, PATCH, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, side * side, -1, 3)
    mean_rgb = patches.mean(2)  # [n, N, 3]
    b = np.minimum(np.floor(mean_rgb * BINS), BINS - 1).astype(int)
    ids = (b[..., 0] * BINS + b[..., 1]) * BINS + b[..., 2]
    counts = collections.Counter(ids.ravel().tolist())
    top, top_n = counts.most_common(1)[0]
    norm = patches * 2 - 1  # [n, N, P, 3] normalized like the recipe (mean 0.5, std 0.5)
    mse = ((norm - norm.mean(0, keepdims=True)) ** 2).mean()
    print(json.dumps({"train_images": n, "patches": int(ids.size), "distinct_bins": len(counts),
                      "majority_bin": int(top), "majority_share": top_n / ids.size,
                      "mrfr_mse_of_position_mean": float(mse)}))


if __name__ == "__main__":
    main()
