#!/usr/bin/python3
"""Golden fixture for MulT's cross-modal layer (tests/temporal_test.cpp, src/braid/nn/temporal/crossmodal.h).

Run with Debian's python (python3-torch 1.13 + python3-numpy; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_temporal_goldens.py

It rewrites tests/fixtures/temporal/crossmodal_layer.safetensors from a fixed seed; running it again gives
a byte-identical file. The file holds the layer's parameters under the C++ module's names with the prefix
"layer." (layer.ln_q.weight, ... for ln_q, ln_kv, q, k, v, proj, ln_ff, ff1, ff2; loaded strictly with
braid::load_module_tensors(..., "layer.")), the inputs (input.target
[B, Tq, D], input.source [B, Tk, D], input.source_lengths [B] int64) and expected [B, Tq, D].

The reference is computed in float64 with PyTorch's own multi-head attention
(torch.nn.functional.multi_head_attention_forward with separate q/k/v projections and a key padding
mask), independently of the C++ code: pre-norm cross attention with residual, pre-norm ReLU FFN with
residual. Row 2 has no valid source step: its attention output is defined as zero (PyTorch gives NaN
there), so that row checks the fully-masked contract. Padded source steps hold random values, so a
missing mask would show.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # e.g. the pyenv python3 on PATH
    sys.exit(f"make_temporal_goldens.py: {e}; run it with Debian's python: /usr/bin/python3 scripts/make_temporal_goldens.py")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "temporal")
MAX_BYTES = 50 * 1024

B, TQ, TK, D, HEADS, FF = 3, 5, 7, 16, 4, 4
SOURCE_LENGTHS = [7, 3, 0]


class CrossModalLayer(torch.nn.Module):
    """Parameter names match braid::nn::CrossModalLayerImpl."""

    def __init__(self, dim, heads, ff_mult):
        super().__init__()
        self.heads = heads
        self.ln_q = torch.nn.LayerNorm(dim)
        self.ln_kv = torch.nn.LayerNorm(dim)
        self.q = torch.nn.Linear(dim, dim)
        self.k = torch.nn.Linear(dim, dim)
        self.v = torch.nn.Linear(dim, dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.ln_ff = torch.nn.LayerNorm(dim)
        self.ff1 = torch.nn.Linear(dim, ff_mult * dim)
        self.ff2 = torch.nn.Linear(ff_mult * dim, dim)

    def forward(self, target, source, source_pad):
        # PyTorch's MHA is sequence-first: [T, B, D]
        q_in = self.ln_q(target).transpose(0, 1)
        kv = self.ln_kv(source).transpose(0, 1)
        a, _ = F.multi_head_attention_forward(
            q_in, kv, kv, q_in.size(-1), self.heads,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q.bias, self.k.bias, self.v.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=self.proj.weight, out_proj_bias=self.proj.bias, training=False,
            key_padding_mask=source_pad, need_weights=False, use_separate_proj_weight=True,
            q_proj_weight=self.q.weight, k_proj_weight=self.k.weight, v_proj_weight=self.v.weight)
        a = a.transpose(0, 1)  # [B, Tq, D]; NaN in rows whose keys are all padding
        empty = source_pad.all(1).view(-1, 1, 1)
        # the contract: no valid key -> zero attention output (before the output projection's bias too)
        a = torch.where(empty, torch.zeros_like(a), a)
        h = target + a
        return h + self.ff2(F.relu(self.ff1(self.ln_ff(h))))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20190601)
    layer = CrossModalLayer(D, HEADS, FF)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for ln in (layer.ln_q, layer.ln_kv, layer.ln_ff):
            ln.weight.copy_(1.0 + 0.3 * torch.randn(D))
            ln.bias.copy_(0.2 * torch.randn(D))
    target = torch.randn(B, TQ, D)
    source = torch.randn(B, TK, D)  # padded steps stay random on purpose
    lengths = torch.tensor(SOURCE_LENGTHS, dtype=torch.int64)
    pad = torch.arange(TK).unsqueeze(0) >= lengths.unsqueeze(1)

    ref = CrossModalLayer(D, HEADS, FF).double()
    ref.load_state_dict({k: v.double() for k, v in layer.state_dict().items()})
    ref.eval()
    with torch.no_grad():
        expected = ref(target.double(), source.double(), pad).float()
    assert torch.isfinite(expected).all()

    tensors = {"layer." + k: v.detach().clone() for k, v in layer.state_dict().items()}
    tensors["input.target"] = target
    tensors["input.source"] = source
    tensors["input.source_lengths"] = lengths
    tensors["expected"] = expected
    path = os.path.join(OUT, "crossmodal_layer.safetensors")
    save_file(tensors, path)
    assert os.path.getsize(path) < MAX_BYTES, (path, os.path.getsize(path))
    print(f"wrote {path} ({os.path.getsize(path)} bytes); expected |max| = {expected.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
