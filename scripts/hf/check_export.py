#!/usr/bin/env python3
"""`braid export` read back by PyTorch and transformers (docs/weights.md, "braid export").

  /tmp/hfv2/bin/python scripts/hf/check_export.py --braid build/apps/braid/braid \\
      --clip-run runs/clip --lm-run runs/mllm_emoji/stage2 --qwen2 --work /tmp/check_export

CLIP (a dual_tower run with image_vit + text_transformer towers, e.g. recipes/emoji_clip.yaml): exports the run,
loads DIR/model.safetensors into bench/peer/clip_peer.py's DualTower (braid's module names; every tensor of the
image and text towers and projections must be there with its shape), and compares its normalized embeddings
with `braid embed` of the same inputs: 6 random 32x32 RGB PNGs (the recipe's image size, so braid resizes
nothing; pixels (x / 255 - mean) / std) and 5 texts (token ids by the run's sentencepiece model, truncated to
data.text.max_tokens). Prints the smallest cosine and the largest |difference| per modality.

LM (a run whose model has a Llama-family LM, e.g. recipes/emoji_mllm.yaml): exports it, loads DIR/hf with
transformers' AutoModelForCausalLM.from_pretrained and compares its logits for DIR/lm_check.safetensors' ids
with braid's logits stored there. --qwen2: a tiny random Qwen2ForCausalLM (biases) through braid import hf and
braid export, loaded back by transformers. Exits 1 when a difference exceeds --tol (1e-4).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import zlib

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "peer"))


def write_png(path, rgb):
    """rgb: uint8 tensor [H, W, 3] -> an 8-bit RGB PNG (no Pillow needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + bytes(rgb[y].flatten().tolist()) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def compare(name, got, want, tol):
    cos = F.cosine_similarity(got, want, dim=1).min().item()
    diff = (got - want).abs().max().item()
    ok = diff <= tol
    print(f"{name}: rows {got.shape[0]}, min cosine {cos:.7f}, max |diff| {diff:.3g} ({'ok' if ok else 'FAIL'} at {tol:g})")
    return ok


def check_clip(args):
    from clip_peer import DualTower
    out = os.path.join(args.work, "clip_export")
    run([args.braid, "export", args.clip_run, "--out", out])
    with open(os.path.join(out, "braid_config.json")) as f:
        bc = json.load(f)
    cfg = bc["recipe"]["model"]
    tensors = load_file(os.path.join(out, "model.safetensors"))
    mods = [m for m in ("image", "text") if m in cfg["modalities"]]
    size = int(bc["recipe"]["data"]["image"]["size"])
    ctx = {"vocab_size": tensors["enc_text.tok.weight"].shape[0], "image_size": size}
    peer = DualTower(dict(cfg, projectors={}, freeze=[]), mods, ctx).eval()
    want = peer.state_dict()
    state = {k: v for k, v in tensors.items() if k in want}
    missing = [k for k in want if k not in state]
    if missing:
        sys.exit(f"{out}/model.safetensors lacks {missing[:3]} (of {len(missing)})")
    for k, v in state.items():
        if v.shape != want[k].shape:
            sys.exit(f"{k}: {tuple(v.shape)} in the export, {tuple(want[k].shape)} in the peer")
    peer.load_state_dict(state, strict=True)
    print(f"clip: {len(state)} of {len(tensors)} exported tensors loaded into bench/peer/clip_peer.py "
          f"(the rest: towers it does not mirror, e.g. {sorted(set(tensors) - set(state))[:1]})")
    ok = True

    # images
    g = torch.Generator().manual_seed(0)
    d = os.path.join(args.work, "images")
    os.makedirs(d, exist_ok=True)
    pixels, lines = [], []
    for i in range(6):
        rgb = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8)
        write_png(os.path.join(d, f"{i}.png"), rgb)
        pixels.append(rgb)
        lines.append(json.dumps({"id": f"img{i}", "split": "test", "image": f"{i}.png"}))
    with open(os.path.join(d, "manifest.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    emb = os.path.join(args.work, "img.safetensors")
    run([args.braid, "embed", args.clip_run, "--data", os.path.join(d, "manifest.jsonl"), "--modality", "image",
         "--out", emb])
    braid_img = load_file(emb)["vectors"]
    im = bc["recipe"]["data"]["image"]
    mean = torch.tensor(im.get("mean", [0.0] * 3)).view(1, 3, 1, 1)
    std = torch.tensor(im.get("std", [1.0] * 3)).view(1, 3, 1, 1)
    x = (torch.stack(pixels).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    with torch.no_grad():
        mb = {"data": x, "present": torch.ones(x.shape[0], dtype=torch.bool)}
        py_img = F.normalize(peer.project("image", mb), dim=1)
    ok &= compare("clip image embeddings (braid embed vs PyTorch)", py_img, braid_img, args.tol)

    # texts
    import sentencepiece as spm
    texts = ["grinning face", "red heart", "a cat with tears of joy", "rocket", "笑脸"]
    cmd = [args.braid, "embed", args.clip_run]
    for t in texts:
        cmd += ["--text", t]
    lines = [json.loads(l) for l in run(cmd).splitlines() if l.strip().startswith("{")]
    braid_txt = torch.tensor([l["embedding"] for l in lines], dtype=torch.float32)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.clip_run, "tokenizer.model"))
    max_tokens = int(bc["recipe"]["data"]["text"]["max_tokens"])
    ids = [sp.encode(t)[:max_tokens] or [1] for t in texts]
    T = max(len(i) for i in ids)
    data = torch.zeros(len(ids), T, dtype=torch.long)
    for r, i in enumerate(ids):
        data[r, :len(i)] = torch.tensor(i)
    with torch.no_grad():
        mb = {"data": data, "lengths": torch.tensor([len(i) for i in ids]), "present": torch.ones(len(ids), dtype=torch.bool)}
        py_txt = F.normalize(peer.project("text", mb), dim=1)
    ok &= compare("clip text embeddings (braid embed vs PyTorch)", py_txt, braid_txt, args.tol)
    return ok


def check_lm(args):
    from transformers import AutoModelForCausalLM
    out = os.path.join(args.work, "lm_export")
    run([args.braid, "export", args.lm_run, "--out", out])
    model = AutoModelForCausalLM.from_pretrained(os.path.join(out, "hf"), torch_dtype=torch.float32).eval()
    probe = load_file(os.path.join(out, "lm_check.safetensors"))
    with torch.no_grad():
        logits = model(probe["ids"]).logits
    n = sum(p.numel() for p in model.parameters())
    print(f"lm: {type(model).__name__} from {out}/hf, {n} parameters")
    return compare("lm logits (transformers vs braid)", logits.flatten(0, 1), probe["logits"].flatten(0, 1), args.tol)


def check_qwen2(args):
    """A tiny random Qwen2ForCausalLM (untied, q/k/v biases drawn nonzero, vocab 400) through braid import hf and
    braid export: transformers loads DIR/hf as Qwen2ForCausalLM with braid's logits and the original's."""
    import shutil
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM
    d = os.path.join(args.work, "qwen2")
    shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(Qwen2Config(vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                     rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=0,
                                     eos_token_id=0)).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.2)
    m.save_pretrained(os.path.join(d, "hf"), safe_serialization=True)
    shutil.copy(os.path.join(HERE, "..", "..", "tests", "fixtures", "hf", "tokenizers", "smollm2", "tokenizer.json"),
                os.path.join(d, "hf"))
    run([args.braid, "import", "hf", os.path.join(d, "hf"), "--out", os.path.join(d, "run")])
    run([args.braid, "export", os.path.join(d, "run"), "--out", os.path.join(d, "export")])
    back = AutoModelForCausalLM.from_pretrained(os.path.join(d, "export", "hf")).eval()
    probe = load_file(os.path.join(d, "export", "lm_check.safetensors"))
    with torch.no_grad():
        a, b = back(probe["ids"]).logits, m(probe["ids"]).logits
    print(f"qwen2: {type(back).__name__} from the export")
    ok = compare("qwen2 logits (exported, transformers vs braid)", a.flatten(0, 1), probe["logits"].flatten(0, 1), args.tol)
    return ok & compare("qwen2 logits (original, transformers vs braid)", b.flatten(0, 1), probe["logits"].flatten(0, 1),
                        args.tol)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--braid", default="build/apps/braid/braid")
    ap.add_argument("--clip-run", default="")
    ap.add_argument("--lm-run", default="")
    ap.add_argument("--qwen2", action="store_true", help="also a tiny Qwen2ForCausalLM through import and export")
    ap.add_argument("--work", default="/tmp/braid_check_export")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(1)
    ok = True
    if args.clip_run:
        ok &= check_clip(args)
    if args.lm_run:
        ok &= check_lm(args)
    if args.qwen2:
        ok &= check_qwen2(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
