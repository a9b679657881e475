#!/usr/bin/env bash
# Full-size parity of `braid import hf` for CLIP ViT-B/16 and SigLIP base (random init: no download).
#
#   scripts/hf/clip_parity.sh [WORK]        (WORK defaults to /tmp/braid-clip-parity; ~3 GB, ~3 min on 2 cores)
#
# Needs build/apps/braid/braid and the reference venv (scripts/hf/venv.sh; BRAID_HF_PY, default
# /tmp/hfv2/bin/python: transformers 4.40.2, open_clip 2.23.0 for the real CLIP BPE vocabulary, sentencepiece).
# For each model: transformers builds it (random init, the hub configs' sizes) and saves it with its image
# processor config and tokenizer; `braid import hf` makes a run; `braid embed` embeds 8 PNGs of assorted sizes
# and 6 texts from a manifest; the script prints the max |diff| of braid's embeddings against the HF
# processor + get_image_features / get_text_features (L2-normalised). (Logit scale / bias equality: tests/hf_clip_test.cpp.)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${BRAID_HF_PY:-/tmp/hfv2/bin/python}
BRAID=${BRAID:-build/apps/braid/braid}
W=${1:-/tmp/braid-clip-parity}
rm -rf "$W"
mkdir -p "$W"
"$PY" scripts/hf/make_tokenizer_fixtures.py --real-clip "$W/cliptok" >/dev/null

"$PY" - "$W" <<'EOF'
import json, os, shutil, sys
import numpy as np, torch
from PIL import Image
W = sys.argv[1]
torch.manual_seed(0)
rng = np.random.default_rng(0)
os.makedirs(f"{W}/images", exist_ok=True)
sizes = [(224, 224), (320, 240), (240, 320), (500, 375), (97, 131), (640, 480), (300, 301), (1024, 200)]
rows = []
texts = ["a photo of a cat", "two dogs playing in the snow", "a diagram of a neural network",
         "the red car parked by the river", "an emoji of a smiling face", "a bowl of ramen"]
for i, (w, h) in enumerate(sizes):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([127 + 100 * np.sin(rng.uniform(0.01, 0.2) * xx + c) * np.cos(rng.uniform(0.01, 0.2) * yy)
                    for c in range(3)], -1) + rng.normal(0, 10, (h, w, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{W}/images/{i}.png")
    rows.append({"id": f"s{i}", "split": "test", "image": f"images/{i}.png", "text": texts[i % len(texts)]})
with open(f"{W}/m.jsonl", "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows))
images = [Image.open(f"{W}/images/{i}.png").convert("RGB") for i in range(len(sizes))]
texts_all = [r["text"] for r in rows]

def save(name, model, proc, tok_files, pixels, ids, extra):
    d = f"{W}/{name}"
    model.save_pretrained(d, safe_serialization=True)
    proc.save_pretrained(d)
    for f in tok_files:
        shutil.copy(f, d)
    with torch.no_grad():
        img = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels), dim=-1)
        txt = torch.nn.functional.normalize(model.get_text_features(**ids), dim=-1)
    np.savez(f"{W}/{name}_ref.npz", image=img.numpy(), text=txt.numpy(), **extra)

from transformers import CLIPConfig, CLIPModel, CLIPImageProcessor, CLIPTokenizerFast
cfg = CLIPConfig(text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12),
                 vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                    num_hidden_layers=12, image_size=224, patch_size=16), projection_dim=512)
model = CLIPModel(cfg).eval()
proc = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
tok = CLIPTokenizerFast.from_pretrained(f"{W}/cliptok")
ids = tok(texts_all, padding=True, return_tensors="pt")
save("clip", model, proc, [f"{W}/cliptok/tokenizer.json"], proc(images=images, return_tensors="pt")["pixel_values"],
     {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]},
     {"logit_scale": model.logit_scale.detach().numpy()})

# SigLIP base/16-224 sizes with a small sentencepiece vocabulary trained here (the real one is a download):
# SiglipTokenizer = sentencepiece + </s>, padded with </s> to 64; braid pads with pad_token_id = </s>.
import sentencepiece as spm
corpus = f"{W}/corpus.txt"
with open(corpus, "w") as f:
    for _ in range(200):
        f.write(" ".join(texts) + "\n")
spm.SentencePieceTrainer.train(input=corpus, model_prefix=f"{W}/spiece", vocab_size=40, hard_vocab_limit=False, pad_id=0, eos_id=1,
                               unk_id=2, bos_id=-1, model_type="unigram", minloglevel=2)
from transformers import SiglipConfig, SiglipModel, SiglipImageProcessor
sp = spm.SentencePieceProcessor(model_file=f"{W}/spiece.model")
scfg = SiglipConfig(text_config=dict(vocab_size=sp.get_piece_size(), pad_token_id=1, eos_token_id=1),
                    vision_config=dict(image_size=224, patch_size=16))
smodel = SiglipModel(scfg).eval()
sproc = SiglipImageProcessor(size={"height": 224, "width": 224})
sids = torch.full((len(texts_all), 64), 1, dtype=torch.long)
for i, t in enumerate(texts_all):
    e = sp.encode(t) + [1]
    sids[i, :len(e)] = torch.tensor(e)
os.makedirs(f"{W}/siglip", exist_ok=True)
save("siglip", smodel, sproc, [f"{W}/spiece.model"], sproc(images=images, return_tensors="pt")["pixel_values"],
     {"input_ids": sids}, {"logit_scale": smodel.logit_scale.detach().numpy(),
                           "logit_bias": smodel.logit_bias.detach().numpy()})
EOF

for m in clip siglip; do
  /usr/bin/time -f "$m: braid import %e s, %M KB" "$BRAID" import hf "$W/$m" --out "$W/run_$m" >/dev/null
  "$BRAID" embed "$W/run_$m" --data "$W/m.jsonl" --modality image --out "$W/${m}_image.safetensors" 2>/dev/null
  "$BRAID" embed "$W/run_$m" --data "$W/m.jsonl" --modality text --out "$W/${m}_text.safetensors" 2>/dev/null
done

"$PY" - "$W" <<'EOF'
import sys, numpy as np
from safetensors.numpy import load_file
W = sys.argv[1]
for m in ("clip", "siglip"):
    ref = np.load(f"{W}/{m}_ref.npz")
    line = []
    for mod in ("image", "text"):
        got = load_file(f"{W}/{m}_{mod}.safetensors")
        v, rows = got["vectors"], got["rows"]
        want = ref[mod][rows]
        line.append(f"{mod} max|diff| {np.abs(v - want).max():.2e} (min cos {(v * want).sum(1).min():.7f}, n={len(rows)})")
    print(f"{m}: " + "; ".join(line))
EOF
