#!/usr/bin/env python3
"""Tiny random Hugging Face causal LMs and their reference outputs, for tests/hf_lm_test.cpp.

Run by hand with the reference venv (scripts/hf/venv.sh; transformers 4.40.2, torch 1.13):
    /tmp/hfv2/bin/python scripts/hf/make_lm_fixtures.py
Writes tests/fixtures/hf/lm/<name>/ with config.json + model.safetensors (transformers' save_pretrained)
and reference.safetensors: ids [2, 12] int64, logits [2, 12, V] fp32 (model(ids).logits), prompt [1, 12]
(= ids[:1]) and greedy [1, 8] int64 (model.generate, do_sample=False, no eos).

Models (all fp32, seeded):
  llama_linear  LlamaForCausalLM, untied lm_head, GQA 4/2, rope_scaling {type: linear, factor: 2.0}
  llama3        LlamaForCausalLM, untied, rope_scaling llama3 (factor 8, low 1, high 4, original 64). transformers
                4.40.2 predates rope_type llama3, so the model is built unscaled, each layer's rotary inv_freq
                buffer is replaced by the llama3 frequencies computed here (the formula of transformers >= 4.43,
                _compute_llama3_parameters), and config.json gets the rope_scaling dict afterwards.
  smollm        LlamaForCausalLM shaped as SmolLM2, scaled down (tie_word_embeddings, 6 heads / 2 kv heads), with
                the 400-token byte-level BPE tokenizer.json of tests/fixtures/hf/tokenizers/smollm2, and a text
                prompt's ids + greedy continuation (text_prompt, text_greedy: up to eos) for braid generate --text
  qwen2         Qwen2ForCausalLM (q/k/v biases, rms_norm_eps 1e-6, rope_theta 1e6, tied)
Weights are drawn with a larger std (0.2) than the 0.02 init so that logits differ clearly between tokens.
"""
import json
import math
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "hf", "lm")
VOCAB = 96


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def llama3_inv_freq(head_dim, theta, factor, low, high, old_len):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, blended, scaled)


def save(name, model, config_patch=None, tokenizer=None, text=""):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    if config_patch:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg.update(config_patch)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
    with torch.no_grad():
        logits = model(ids).logits.float()
        out = model.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), max_new_tokens=8, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    greedy = out[:, ids.shape[1]:]
    ref = {"ids": ids.contiguous(), "logits": logits.contiguous(), "prompt": ids[:1].clone(), "greedy": greedy.contiguous()}
    if tokenizer:
        # the checkpoint's tokenizer.json, and a text prompt's ids + greedy continuation (stopping at eos) for
        # braid import hf + braid generate --text
        shutil.copy(tokenizer, os.path.join(d, "tokenizer.json"))
        tok = Tokenizer.from_file(tokenizer)
        tids = torch.tensor([tok.encode(text).ids])
        with torch.no_grad():
            tout = model.generate(tids, attention_mask=torch.ones_like(tids), max_new_tokens=12, do_sample=False,
                                  eos_token_id=model.config.eos_token_id, pad_token_id=model.config.eos_token_id)
        tg = tout[0, tids.shape[1]:].tolist()
        if model.config.eos_token_id in tg:
            tg = tg[:tg.index(model.config.eos_token_id)]
        ref["text_prompt"] = tids
        ref["text_greedy"] = torch.tensor([tg], dtype=torch.long)
        print(f"{name}: text {text!r} -> {tids.tolist()} -> greedy {tg} = {tok.decode(tg)!r}")
    save_file(ref, os.path.join(d, "reference.safetensors"))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {size} bytes, greedy {greedy.tolist()}")


def main():
    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, hidden_act="silu", bos_token_id=1,
                  eos_token_id=2)

    m = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5,
                                     rope_scaling={"type": "linear", "factor": 2.0}))
    randomize(m, 1)
    save("llama_linear", m)

    c = dict(common, max_position_embeddings=256)
    m = LlamaForCausalLM(LlamaConfig(**c, tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5))
    randomize(m, 2)
    r = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
         "original_max_position_embeddings": 64}
    inv = llama3_inv_freq(32 // 4, 10000.0, r["factor"], r["low_freq_factor"], r["high_freq_factor"],
                          r["original_max_position_embeddings"])
    for layer in m.model.layers:
        layer.self_attn.rotary_emb.inv_freq.copy_(inv)
    save("llama3", m, {"rope_scaling": r})

    # SmolLM2's shape scaled down, with the byte-level BPE of tests/fixtures/hf/tokenizers/smollm2 (400 tokens;
    # <|endoftext|> = 0 is bos and eos, as SmolLM2's)
    c = dict(common, vocab_size=400, hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
             intermediate_size=96, bos_token_id=0, eos_token_id=0)
    m = LlamaForCausalLM(LlamaConfig(**c, tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-5))
    randomize(m, 3)
    save("smollm", m, tokenizer=os.path.join(OUT, "..", "tokenizers", "smollm2", "tokenizer.json"),
         text="The quick brown fox")

    m = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
                                     use_sliding_window=False))
    randomize(m, 4)
    save("qwen2", m)


if __name__ == "__main__":
    sys.exit(main())
