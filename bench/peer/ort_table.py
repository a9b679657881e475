#!/usr/bin/python3
"""Tables of bench/engine.sh PARTS=ort: ort_table.py OUT ROUNDS BUSY BUSY_THREADS SPINCOUNT.

Reads OUT/ort.TOWER.SIDE.R.json (SIDE braid | braidk (--prepack) | torch | ort: inference samples/s at the dumped batch B and at B=1;
braidq (--precision int8) where engine.sh ran with INT8=1: then a second table, int8 vs fp32-packed and vs ORT)
and, with BUSY=1, OUT/busy.TOWER.VARIANT.{busy,quiet}.json + .load (the same timing with and without a busy process).
Rates: median of all repeats of a side; ratio: median over rounds of braid / other within the round (> 1: braid faster).
"""
import json
import os
import statistics
import sys

out, rounds, busy, busy_threads, spincount = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
TOWERS = ("image", "text")
SIDES = ("braid", "braidk", "torch", "ort")
KEYS = (("infer_samples_per_s_b64", "B"), ("infer_samples_per_s_b1", "1"))


def load(path):
    with open(path) as f:
        return json.load(f)


rows, meta, int8_rows = [], {}, []
int8 = os.path.exists(os.path.join(out, "ort.image.braidq.1.json"))
for tower in TOWERS:
    docs = {s: [load(os.path.join(out, f"ort.{tower}.{s}.{r}.json")) for r in range(1, rounds + 1)] for s in SIDES}
    B = docs["braid"][0]["batch_size"]
    for key, label in KEYS:
        rate = {s: statistics.median(run[key] for d in docs[s] for run in d["runs"]) for s in SIDES}
        ratio = {(a, o): statistics.median(docs[a][r][key] / docs[o][r][key] for r in range(rounds))
                 for a in ("braid", "braidk") for o in ("torch", "ort")}
        rows.append((tower, B if label == "B" else 1, rate, ratio))
        if int8:
            q = [load(os.path.join(out, f"ort.{tower}.braidq.{r}.json")) for r in range(1, rounds + 1)]
            int8_rows.append((tower, B if label == "B" else 1, statistics.median(run[key] for d in q for run in d["runs"]),
                              rate["braidk"], rate["ort"],
                              *(statistics.median(q[r][key] / docs[o][r][key] for r in range(rounds))
                                for o in ("braidk", "ort", "braid")), q[0]["precision"]))
    meta = {"threads": {s: docs[s][0]["threads"] for s in SIDES}, "repeats": docs["braid"][0]["repeats"],
            "steps": docs["braid"][0]["steps"], "diff": docs["ort"][0].get("max_abs_diff_vs_torch"),
            "ortv": docs["ort"][0].get("ort")}

print("| tower | batch | braid samples/s | braid --prepack | PyTorch samples/s | ONNX Runtime samples/s | "
      "braid / PyTorch | braid / ORT | braid --prepack / PyTorch | braid --prepack / ORT |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for tower, b, rate, ratio in rows:
    print(f"| {tower} | {b} | {rate['braid']:.1f} | {rate['braidk']:.1f} | {rate['torch']:.1f} | {rate['ort']:.1f} | "
          + " | ".join(f"{ratio[(a, o)]:.2f}" for a in ("braid", "braidk") for o in ("torch", "ort")) + " |")
print()
print(f"rates: median of {rounds} processes x {meta['repeats']} repeats per side (each repeat: {meta['steps']} batches, "
      f"then {4 * meta['steps']} single rows, after a warm forward); ratio: median over rounds of back-to-back processes; "
      f"braid --prepack: the same command through pre-packed oneDNN weights (nn/prepack.h); braid runs with its "
      f"default passive OpenMP waits; "
      f"threads braid {meta['threads']['braid']}, PyTorch {meta['threads']['torch']}, ORT {meta['threads']['ort']} "
      f"(ORT {meta['ortv']}: intra-op threads, 1 inter-op, sequential); ONNX Runtime vs PyTorch peer embeddings, "
      f"max abs diff {meta['diff']:.1e}")

if int8_rows:
    print()
    print("### int8 (`braid bench speed --precision int8`) beside fp32 packed and ONNX Runtime (fp32)")
    print()
    print("| tower | batch | braid int8 samples/s | braid --prepack (fp32) | ONNX Runtime (fp32) | int8 / fp32 packed | "
          "int8 / ORT | int8 / braid unpacked | precision reported |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for tower, b, rq, rk, ro, vk, vo, vb, prec in int8_rows:
        print(f"| {tower} | {b} | {rq:.1f} | {rk:.1f} | {ro:.1f} | {vk:.2f} | {vo:.2f} | {vb:.2f} | {prec} |")
    print()
    print("int8: the Linear layers through int8 oneDNN weights (per-channel s8 weights, per-row s8 activations, VNNI), "
          "attention and the rest fp32; run right after braid --prepack in each round; ratios: median over rounds")

if busy:
    print()
    print(f"### With a busy {busy_threads}-thread process (a PyTorch matmul loop) on the machine")
    print()
    print("| tower | side | B quiet | B busy | slowdown | B=1 quiet | B=1 busy | slowdown | load (1 min) when busy |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = {"braid": "braid (default: passive waits)", "braid-prepack": "braid --prepack",
             "braid-gomp": "braid, GOMP_SPINCOUNT=300000 (libgomp's default)",
             "braid-spin": f"braid, GOMP_SPINCOUNT={spincount}", "ort": "ONNX Runtime"}
    for tower in TOWERS:
        for v, label in names.items():
            q = os.path.join(out, f"busy.{tower}.{v}.quiet.json")
            b = os.path.join(out, f"busy.{tower}.{v}.busy.json")
            if not os.path.exists(q):
                continue
            q = load(q)
            b = load(b) if os.path.exists(b) else None
            ld = open(os.path.join(out, f"busy.{tower}.{v}.load")).read().strip()
            cells = [tower, label]
            for key, _ in KEYS:
                if b is None:
                    cells += [f"{q[key]:.1f}", "timed out", "-"]
                else:
                    cells += [f"{q[key]:.1f}", f"{b[key]:.1f}", f"{q[key] / b[key]:.1f}x"]
            print("| " + " | ".join(cells + [ld]) + " |")
    print()
    print("slowdown = quiet rate / busy rate (the quiet run right after the busy one, same settings); one process each")
