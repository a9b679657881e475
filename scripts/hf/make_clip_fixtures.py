#!/usr/bin/env python3
"""Fixtures of tests/hf_clip_test.cpp: tiny random CLIPModel, SiglipModel and OpenCLIP checkpoints with
reference features, and PNGs with the HF image processors' pixel values.

Run by hand with the reference venv (scripts/hf/venv.sh; transformers 4.40.2, open_clip 2.23.0):
    /tmp/hfv2/bin/python scripts/hf/make_clip_fixtures.py tests/fixtures/hf/clip

Writes OUT/
  clip/      config.json, model.safetensors, preprocessor_config.json      (CLIPModel, quick_gelu, eos pooling)
             tokenizer.json (a copy of tests/fixtures/hf/tokenizers/clip: the 500-id CLIP BPE)
  siglip/    config.json, model.safetensors, preprocessor_config.json      (SiglipModel, gelu_pytorch_tanh)
  openclip/  open_clip_model.safetensors, model_config.json                (OpenCLIP ViT, gelu, argmax pooling)
  images/    a.png (40x52), b.png (64x48), c.png (23x31): smooth random pictures
  <name>_reference.safetensors for name in clip, siglip, openclip:
    pixel_values [3, 3, S, S]  the model's image processor on images/{a,b,c}.png (OpenCLIP: its own transform)
    input_ids    [3, L] int64  braid's batch: ids then 0 beyond `lengths`
    lengths      [3] int64
    image_features [3, E], text_features [3, E]   get_image_features / get_text_features (not normalised)
    logit_scale [1] (and logit_bias [1] for SigLIP)
    clip only: string_ids [3, T], string_features [3, E]: TEXTS through tokenizer.json (padded with eos)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf/clip"
torch.manual_seed(0)
rng = np.random.default_rng(0)
# texts of the end-to-end check (clip_reference string_features, in this order)
TEXTS = ["a photo of a cat", "Two dogs playing in the snow!", "a diagram"]


def smooth_image(w, h):
    # low-frequency colours plus a little noise: bicubic resizing has something to do
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, p = rng.uniform(0.05, 0.4, 3)
        img[..., c] = 127 + 100 * np.sin(a * xx + p * 6) * np.cos(b * yy)
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def save_images():
    os.makedirs(f"{OUT}/images", exist_ok=True)
    paths = []
    for name, (w, h) in [("a", (40, 52)), ("b", (64, 48)), ("c", (23, 31))]:
        p = f"{OUT}/images/{name}.png"
        smooth_image(w, h).save(p)
        paths.append(p)
    return [Image.open(p).convert("RGB") for p in paths]


def perturb(model):
    # random init leaves LayerNorms at 1/0 and biases at 0: perturb every tensor so all of them matter
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "logit" not in n:
                p.add_(torch.randn_like(p) * 0.05)
            p.copy_(p.half().float())  # fp16-exact: the files store fp16 (half the bytes; tests the fp16 path)


def ids_batch(lengths, L, vocab_lo, vocab_hi, bos=None, eos=None):
    ids = torch.zeros(len(lengths), L, dtype=torch.long)
    for i, n in enumerate(lengths):
        row = torch.randint(vocab_lo, vocab_hi, (n,))
        if bos is not None:
            row[0] = bos
        if eos is not None:
            row[n - 1] = eos
        ids[i, :n] = row
    return ids


def write_ref(name, **t):
    save_file({k: v.contiguous() for k, v in t.items()}, f"{OUT}/{name}_reference.safetensors")


def make_clip(images):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    # the 500-id CLIP BPE of tests/fixtures/hf/tokenizers/clip (scripts/hf/make_tokenizer_fixtures.py):
    # <|startoftext|> = 0, <|endoftext|> = 1
    text = dict(vocab_size=500, hidden_size=24, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=16, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=45, num_hidden_layers=2, num_attention_heads=4, image_size=30,
                  patch_size=6, hidden_act="quick_gelu")
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=20, logit_scale_init_value=2.6592)
    model = CLIPModel(cfg).eval()
    perturb(model)
    d = f"{OUT}/clip"
    model.half().save_pretrained(d, safe_serialization=True)
    model.float()
    proc = CLIPImageProcessor(size={"shortest_edge": 34}, crop_size={"height": 30, "width": 30})
    proc.save_pretrained(d)
    pixels = proc(images=images, return_tensors="pt")["pixel_values"]
    lengths = torch.tensor([5, 9, 3])
    ids = ids_batch(lengths.tolist(), 10, 2, 500, bos=0, eos=1)
    ids[1, 6] = 1  # a second eos inside a row: pooling takes the first
    mask = (torch.arange(10)[None] < lengths[:, None]).long()
    hf_ids = torch.where(mask.bool(), ids, torch.full_like(ids, 1))  # HF pads with pad_token_id
    # the texts of the end-to-end test through the tokenizer (braid run: tokenizer.json + recipe)
    from tokenizers import Tokenizer
    tok_src = os.path.join(os.path.dirname(OUT), "tokenizers/clip/tokenizer.json")
    shutil.copy(tok_src, f"{d}/tokenizer.json")
    tok = Tokenizer.from_file(f"{d}/tokenizer.json")
    tok.enable_truncation(max_length=16)  # the context; the post-processor keeps <|endoftext|>
    enc = [tok.encode(t).ids for t in TEXTS]
    T = max(len(e) for e in enc)
    s_ids = torch.full((len(enc), T), 1, dtype=torch.long)
    s_mask = torch.zeros(len(enc), T, dtype=torch.long)
    for i, e in enumerate(enc):
        s_ids[i, :len(e)] = torch.tensor(e)
        s_mask[i, :len(e)] = 1
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(input_ids=hf_ids, attention_mask=mask)
        s_txt = model.get_text_features(input_ids=s_ids, attention_mask=s_mask)
    write_ref("clip", pixel_values=pixels, input_ids=ids, lengths=lengths, image_features=img, text_features=txt,
              logit_scale=model.logit_scale.detach().reshape(1), string_ids=s_ids, string_features=s_txt)


def make_siglip(images):
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    text = dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=12, pad_token_id=1, eos_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=28,
                  patch_size=7)
    cfg = SiglipConfig(text_config=text, vision_config=vision)
    model = SiglipModel(cfg).eval()
    perturb(model)
    with torch.no_grad():
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-9.5)
    d = f"{OUT}/siglip"
    model.half().save_pretrained(d, safe_serialization=True)
    model.float()
    proc = SiglipImageProcessor(size={"height": 28, "width": 28})
    proc.save_pretrained(d)
    pixels = proc(images=images, return_tensors="pt")["pixel_values"]
    lengths = torch.tensor([4, 7, 2])
    ids = ids_batch(lengths.tolist(), 7, 2, 99, eos=1)
    # HF: padding="max_length" to the context with the pad id, no attention mask
    hf_ids = torch.full((3, 12), 1, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        hf_ids[i, :n] = ids[i, :n]
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(input_ids=hf_ids)
    write_ref("siglip", pixel_values=pixels, input_ids=ids, lengths=lengths, image_features=img, text_features=txt,
              logit_scale=model.logit_scale.detach().reshape(1), logit_bias=model.logit_bias.detach().reshape(1))


def make_openclip(images):
    import open_clip
    from open_clip.factory import _MODEL_CONFIGS

    mcfg = {"embed_dim": 20,
            "vision_cfg": {"image_size": 30, "layers": 2, "width": 32, "patch_size": 6, "head_width": 8,
                           "mlp_ratio": 2.0},
            "text_cfg": {"context_length": 16, "vocab_size": 99, "width": 24, "heads": 4, "layers": 2}}
    _MODEL_CONFIGS["braid-tiny"] = mcfg
    model, _, preprocess = open_clip.create_model_and_transforms("braid-tiny")
    model.eval()
    perturb(model)
    d = f"{OUT}/openclip"
    os.makedirs(d, exist_ok=True)
    sd = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, f"{d}/open_clip_model.safetensors")
    with open(f"{d}/model_config.json", "w") as f:
        json.dump(mcfg, f, indent=2)
    pixels = torch.stack([preprocess(im) for im in images])
    lengths = torch.tensor([6, 3, 8])
    ids = ids_batch(lengths.tolist(), 8, 2, 97, bos=97, eos=98)  # eot is the highest id: argmax pooling
    with torch.no_grad():
        img = model.encode_image(pixels)
        full = torch.zeros(3, 16, dtype=torch.long)
        full[:, :8] = ids
        txt = model.encode_text(full)
    write_ref("openclip", pixel_values=pixels, input_ids=ids, lengths=lengths, image_features=img,
              text_features=txt, logit_scale=model.logit_scale.detach().reshape(1))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    images = save_images()
    make_clip(images)
    make_siglip(images)
    make_openclip(images)
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.getsize(p):8d}  {p}")
