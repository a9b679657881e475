#!/usr/bin/python3
"""Table of bench/engine.sh's precision part: precision_table.py OUT ROUNDS NAME...

Reads NAME.braid.R.json (braid, `precision: auto`), NAME.torch_fp32.R.json and NAME.torch_bf16.R.json (the
PyTorch peer in fp32 and under CPU autocast bf16) for R = 1..ROUNDS. Rates: medians over every repeat of every
round; ratios: median over rounds of braid / PyTorch of the same round (the three processes ran back to back)."""
import json, os, statistics, sys

out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
KEYS = (("train_steps_per_s", "train steps/s", "{:.2f}"), ("infer_samples_per_s_b64", "infer samples/s (B)", "{:.0f}"),
        ("infer_samples_per_s_b1", "infer samples/s (B=1)", "{:.0f}"))
SIDES = ("braid", "torch_fp32", "torch_bf16")


def load(name, side):
    return [json.load(open(os.path.join(out, f"{name}.{side}.{r}.json"))) for r in range(1, rounds + 1)]


rows = []
for n in names:
    docs = {s: load(n, s) for s in SIDES}
    params = {s: docs[s][0]["parameters"] for s in SIDES}
    if len(set(params.values())) != 1:
        sys.exit(f"{n}: parameter counts differ: {params}")
    for s in ("torch_fp32", "torch_bf16"):
        want = s.split("_")[1]
        got = {d.get("precision") for d in docs[s]}
        if got != {want}:
            sys.exit(f"{n}: the {s} runs report precision {got}, expected {want}")
    rows.append((n, docs))

for key, label, fmt in KEYS:
    print(f"| model | params | B | braid precision | braid {label} | PyTorch fp32 | PyTorch autocast bf16 | "
          "braid / PyTorch fp32 | braid / PyTorch bf16 | per-round ratios (fp32; bf16) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for n, docs in rows:
        rate = {s: statistics.median(run[key] for d in docs[s] for run in d["runs"]) for s in SIDES}
        r32 = [b[key] / t[key] for b, t in zip(docs["braid"], docs["torch_fp32"])]
        r16 = [b[key] / t[key] for b, t in zip(docs["braid"], docs["torch_bf16"])]
        prec = "/".join(sorted({d["precision"] for d in docs["braid"]}))
        print(f"| {n} | {docs['braid'][0]['parameters']:,} | {docs['braid'][0]['batch_size']} | {prec} | "
              f"{fmt.format(rate['braid'])} | {fmt.format(rate['torch_fp32'])} | {fmt.format(rate['torch_bf16'])} | "
              f"**{statistics.median(r32):.2f}** | **{statistics.median(r16):.2f}** | "
              f"{', '.join(f'{x:.2f}' for x in r32)}; {', '.join(f'{x:.2f}' for x in r16)} |")
    print()
d0 = rows[0][1]
nrep = len(d0["braid"][0]["runs"])
print(f"rates: medians of {rounds} processes x {nrep} repeats per side; ratio > 1: braid faster; threads: braid "
      f"{d0['braid'][0]['threads']}, PyTorch {d0['torch_fp32'][0]['threads']}; PyTorch {d0['torch_fp32'][0]['torch']}")
