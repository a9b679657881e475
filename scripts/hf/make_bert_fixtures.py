#!/usr/bin/env python3
"""Fixtures of tests/hf_bert_test.cpp: a tiny random BERT saved as a Hugging Face /
sentence-transformers folder, and reference sentence embeddings made by sentence-transformers.

    /tmp/hfv2/bin/python scripts/hf/make_bert_fixtures.py      # (bash scripts/hf/venv.sh /tmp/hfv2)

Writes tests/fixtures/hf/bert/:
  model/          config.json, model.safetensors, vocab.txt, tokenizer.json, tokenizer_config.json,
                  special_tokens_map.json, modules.json (Transformer, Pooling, Normalize),
                  1_Pooling/config.json (mean), sentence_bert_config.json  -- what `braid import hf` reads
  golden.safetensors
                  ids [N, T] int64 (the tokenizer's ids of TEXTS with [CLS]/[SEP], 0-padded),
                  lengths [N] int64, and per pooling mode p in (mean, cls, max):
                  emb_<p> [N, H] (sentence-transformers Pooling, no Normalize) and
                  st [N, H] = SentenceTransformer(model).encode(TEXTS) (mean + Normalize)
  golden.json     the texts and the figures above, for reading
Deterministic (seed 0). Python runs only here, by hand; the tests read the files.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from sentence_transformers import models as st_models
from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing
from tokenizers.decoders import WordPiece as WordPieceDecoder
from transformers import BertConfig, BertModel, BertTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "hf", "bert")
MODEL = os.path.join(OUT, "model")

TEXTS = [
    "a red apple on the table",
    "The cat sat on the mat.",
    "smiling face with heart eyes",
    "A dog runs in the park, happily!",
    "grinning face",
    "unknown qwzx tokens here",
]

WORDS = ("a an the on in of with and red green blue apple cat dog sat mat table face heart eyes smiling "
         "grinning runs park happily here tokens un known smile run").split()
PIECES = ["##s", "##ing", "##ly", "##ed", "##e", "##y", "##er"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
PUNCT = list(".,!?'-")


def main():
    torch.manual_seed(0)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(MODEL, "1_Pooling"))

    # Vocabulary: specials, punctuation, letters and their ## forms, some words and suffixes.
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PUNCT + LETTERS + ["##" + c for c in LETTERS]
    for w in WORDS + PIECES:
        if w not in vocab:
            vocab.append(w)
    with open(os.path.join(MODEL, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(WordPiece(ids, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = BertPreTokenizer()
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tok.decoder = WordPieceDecoder(prefix="##")
    tok.save(os.path.join(MODEL, "tokenizer.json"))
    fast = BertTokenizerFast(tokenizer_file=os.path.join(MODEL, "tokenizer.json"), vocab_file=os.path.join(MODEL, "vocab.txt"),
                             do_lower_case=True, model_max_length=64)
    fast.save_pretrained(MODEL)

    H, L, NH, I = 32, 2, 4, 37
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=H, num_hidden_layers=L, num_attention_heads=NH,
                     intermediate_size=I, max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12,
                     hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bert = BertModel(cfg).eval()
    with torch.no_grad():  # larger than BERT's 0.02 init so that the layers matter
        for n, p in bert.named_parameters():
            if "LayerNorm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p) if n.endswith("weight") else 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    bert.save_pretrained(MODEL, safe_serialization=True)

    with open(os.path.join(MODEL, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                  f, indent=2)
    with open(os.path.join(MODEL, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": H, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
                   "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=2)
    with open(os.path.join(MODEL, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 32, "do_lower_case": False}, f, indent=2)

    # References: the folder through SentenceTransformer (as a user would load it) ...
    st = SentenceTransformer(MODEL, device="cpu")
    emb_st = st.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=False, batch_size=len(TEXTS)).cpu()
    # ... and per pooling mode over the same token embeddings.
    enc = fast(TEXTS, padding=True, return_tensors="pt")
    feats = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
             "token_type_ids": enc["token_type_ids"]}
    with torch.no_grad():
        feats = st[0](feats)
        out = {}
        for mode in ("mean", "cls", "max"):
            pool = st_models.Pooling(H, pooling_mode=mode)
            out["emb_" + mode] = pool(dict(feats))["sentence_embedding"].contiguous()
    lengths = enc["attention_mask"].sum(1).to(torch.int64)
    tensors = {"ids": enc["input_ids"].to(torch.int64).contiguous(), "lengths": lengths.contiguous(),
               "st": emb_st.contiguous()}
    tensors.update(out)
    save_file(tensors, os.path.join(OUT, "golden.safetensors"))
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"texts": TEXTS, "ids": enc["input_ids"].tolist(), "lengths": lengths.tolist(),
                   "hidden": H, "layers": L, "heads": NH, "intermediate": I, "vocab": len(vocab)}, f, indent=1)
    # Unused by sentence-transformers: keep the folder small.
    for extra in ("README.md",):
        p = os.path.join(MODEL, extra)
        if os.path.exists(p):
            os.remove(p)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT} ({total} bytes); st[0][:4] = {emb_st[0, :4].tolist()}", file=sys.stderr)


if __name__ == "__main__":
    main()
