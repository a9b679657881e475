#!/usr/bin/python3
"""The table of bench/gpu.sh: gpu_table.py OUT ROUNDS (reads gpuclip.{braid,torch}.R.json,
gpuclip.braid_{foreach,loop}.json, gpuclip.peak.json and, where present, the references
gpuclip.torch.{fused,compile}.json)."""
import json
import os
import statistics
import sys

out, rounds = sys.argv[1], int(sys.argv[2])
SPEC_BF16_TFLOPS = 989.4  # H100 SXM / H200 datasheet, dense bf16 tensor cores


def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


braid = [load(f"gpuclip.braid.{r}.json") for r in range(1, rounds + 1)]
torch_ = [load(f"gpuclip.torch.{r}.json") for r in range(1, rounds + 1)]
peak = load("gpuclip.peak.json")
flops = torch_[0]["train_flops_per_step"]
infer_flops = torch_[0]["infer_flops_per_batch"]
if braid[0]["parameters"] != torch_[0]["parameters"]:
    sys.exit(f"braid has {braid[0]['parameters']} parameters, the PyTorch peer {torch_[0]['parameters']}")
B = braid[0]["batch_size"]


def med(docs, k):
    return statistics.median(run[k] for d in docs for run in d["runs"])


def row(label, docs):
    sps = med(docs, "train_steps_per_s")
    tflops = flops * sps / 1e12
    return (f"| {label} | {1000 / sps:.1f} | {sps * B:.0f} | {tflops:.0f} | {100 * tflops / peak['peak_tflops_bf16']:.1f} % | "
            f"{100 * tflops / SPEC_BF16_TFLOPS:.1f} % | {med(docs, 'infer_samples_per_s_b64'):.0f} |")


print(f"CLIP ViT-B/16 + text Transformer, {braid[0]['parameters']:,} parameters, batch {B}, "
      f"{braid[0]['precision']} autocast, device {braid[0]['device']} ({torch_[0]['torch']}); "
      f"{flops / 1e12:.2f} TFLOP per training step, {infer_flops / 1e12:.3f} TFLOP per inference batch "
      f"(counted by the peer: {'FlopCounterMode, matmul/conv/attention' if not torch_[0]['torch'].startswith('1.') else 'torch profiler'})")
print(f"measured matmul peak 8192^3: bf16 {peak['peak_tflops_bf16']:.0f} TFLOP/s, fp32 {peak['peak_tflops_fp32']:.0f} TFLOP/s; "
      f"median of {sum(len(d['runs']) for d in braid)} repeats x {braid[0]['steps']} steps per side\n")
print("| run | ms / step | samples/s | TFLOP/s | MFU (measured peak) | MFU (989 TFLOP/s) | inference samples/s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
print(row(f"braid (AdamW {braid[0].get('adamw', '?')})", braid))
for impl in ("foreach", "loop"):
    p = os.path.join(out, f"gpuclip.braid_{impl}.json")
    if os.path.exists(p):
        print(row(f"braid, BRAID_ADAMW={impl}", [load(os.path.basename(p))]))
print(row(f"PyTorch eager (AdamW {torch_[0].get('adamw', 'default')})", torch_))
for name, label in (("fused", "PyTorch eager, fused AdamW"), ("compile", "PyTorch torch.compile, fused AdamW")):
    p = os.path.join(out, f"gpuclip.torch.{name}.json")
    if os.path.exists(p):
        print(row(label, [load(os.path.basename(p))]))
ratios = [statistics.median(r["train_steps_per_s"] for r in b["runs"]) /
          statistics.median(r["train_steps_per_s"] for r in t["runs"]) for b, t in zip(braid, torch_)]
iratios = [statistics.median(r["infer_samples_per_s_b64"] for r in b["runs"]) /
           statistics.median(r["infer_samples_per_s_b64"] for r in t["runs"]) for b, t in zip(braid, torch_)]
print(f"\nbraid / PyTorch eager: training {statistics.median(ratios):.2f}x "
      f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}), inference (batch {B}) {statistics.median(iratios):.2f}x")
