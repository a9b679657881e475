#!/usr/bin/python3
"""Exports the bench CLIP's image and text towers (bench/clip_speed.sh) from the PyTorch peer to ONNX, for the
ONNX Runtime column of bench/engine.sh (PARTS=ort; bench/peer/ort_tower_bench.js times them).

  /usr/bin/python3 bench/peer/clip_onnx.py DUMP OUTDIR [--weights RUN/model.pt]

DUMP is the folder `braid bench speed --dump` wrote (model.json + the first batch as .npy). The peer
(bench/peer/clip_peer.py) builds the same dual_tower with braid's module names and parameter count (asserted);
--weights loads a braid run's model.pt into it strictly (same names and shapes), else it keeps its seeded random
init (timing does not depend on the values). Each tower is the model's inference forward for one modality
(DualTowerImpl::forward: encoder -> projection -> L2 normalisation), in eval mode:

  image.onnx  pixels [B, 3, S, S] float32                         -> emb [B, E]
  text.onnx   ids [B, T] int64, lengths [B] int64                 -> emb [B, E]

exported with opset 14 and a dynamic batch (and T for text). Beside them OUTDIR gets each input of the dumped
batch as raw little-endian bytes (<tower>.<input>.bin), the peer's own embeddings of that batch (<tower>.emb.bin,
for the ONNX Runtime check) and towers.json describing all of it (names, dtypes, shapes, files).
Run it with Debian's interpreter (python3-torch 1.13 has torch.onnx; the onnx package is not needed).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_peer import DualTower  # noqa: E402
from common import load_batch  # noqa: E402


class ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, pixels):
        # every row present (the Encoder's absent-row zeroing is a multiply by 1)
        h = self.m.proj_image(self.m.enc_image.encode({"data": pixels}))
        return F.normalize(h, dim=1)


class TextTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, ids, lengths):
        h = self.m.proj_text(self.m.enc_text.encode({"data": ids, "lengths": lengths}))
        return F.normalize(h, dim=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("out")
    ap.add_argument("--weights", default="", help="a braid run's model.pt (loaded strictly)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    info = json.load(open(os.path.join(args.dump, "model.json")))
    cfg = info["model_config"]
    if cfg.get("name") != "dual_tower":
        sys.exit(f"clip_onnx: {args.dump}/model.json: model '{cfg.get('name')}' is not dual_tower")
    modalities = info["modalities"]
    if sorted(modalities) != ["image", "text"]:
        sys.exit(f"clip_onnx: {args.dump}/model.json: expected modalities image and text, got {modalities}")
    torch.manual_seed(args.seed)
    batch = load_batch(args.dump, modalities)
    model = DualTower(cfg, modalities, {"vocab_size": info.get("vocab_size", 0),
                                        "image_size": batch["image"]["data"].size(-1)})
    params = sum(p.numel() for p in model.parameters())
    if params != int(info["parameters"]):
        sys.exit(f"clip_onnx: {params} parameters, braid has {info['parameters']}: the architectures differ")
    if args.weights:
        model.load_state_dict(torch.jit.load(args.weights).state_dict(), strict=True)
    model.eval()
    os.makedirs(args.out, exist_ok=True)

    towers = {
        "image": (ImageTower(model), {"pixels": batch["image"]["data"].float().contiguous()},
                  {"pixels": {0: "b"}}),
        "text": (TextTower(model), {"ids": batch["text"]["data"].long().contiguous(),
                                    "lengths": batch["text"]["lengths"].long().contiguous()},
                 {"ids": {0: "b", 1: "t"}, "lengths": {0: "b"}}),
    }
    desc = {"parameters": params, "batch_size": batch["image"]["data"].size(0), "torch": torch.__version__,
            "weights": args.weights or "random (seed %d)" % args.seed, "towers": {}}
    for name, (tower, inputs, axes) in towers.items():
        tower.eval()  # (export restores the wrapper's mode afterwards, recursively: a training wrapper would turn dropout on)
        onnx_path = os.path.join(args.out, name + ".onnx")
        names = list(inputs)
        with torch.no_grad():
            emb = tower(*inputs.values())
            # the peer's own forward on the whole batch must give the same embeddings (no drift from the wrapper)
            ref = model({name: batch[name]})
            if (emb - ref).abs().max().item() > 1e-5:
                sys.exit(f"clip_onnx: the {name} wrapper differs from DualTower.forward by {(emb - ref).abs().max():.1e}")
            torch.onnx.export(tower, tuple(inputs.values()), onnx_path, input_names=names, output_names=["emb"],
                              dynamic_axes={**axes, "emb": {0: "b"}}, opset_version=14)
        entry = {"model": name + ".onnx", "inputs": [], "output": {"name": "emb", "shape": list(emb.shape),
                                                                    "file": name + ".emb.bin"}}
        emb.numpy().astype("<f4").tofile(os.path.join(args.out, name + ".emb.bin"))
        for k, v in inputs.items():
            f = f"{name}.{k}.bin"
            dtype = {torch.float32: "float32", torch.int64: "int64"}[v.dtype]
            v.numpy().astype("<f4" if dtype == "float32" else "<i8").tofile(os.path.join(args.out, f))
            entry["inputs"].append({"name": k, "dtype": dtype, "shape": list(v.shape), "file": f})
        desc["towers"][name] = entry
        print(f"clip_onnx: {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.1f} MB)", file=sys.stderr)
    with open(os.path.join(args.out, "towers.json.tmp"), "w") as f:
        json.dump(desc, f, indent=1)
    os.replace(os.path.join(args.out, "towers.json.tmp"), os.path.join(args.out, "towers.json"))


if __name__ == "__main__":
    main()
