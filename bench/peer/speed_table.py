#!/usr/bin/python3
"""Tables for bench/lib.sh: speed_table OUT ROUNDS NAME... (reads NAME.{braid,torch}.R.json, gemm.json)."""
import json, os, statistics, sys

out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
KEYS = ("train_steps_per_s", "infer_samples_per_s_b64", "infer_samples_per_s_b1")
gemm = json.load(open(os.path.join(out, "gemm.json")))
peak = gemm["gflops"]


def collect(name, side):
    docs = [json.load(open(os.path.join(out, f"{name}.{side}.{r}.json"))) for r in range(1, rounds + 1)]
    runs = [run for d in docs for run in d["runs"]]
    agg = {k: statistics.median(run[k] for run in runs) for k in KEYS}
    agg["rounds"] = [{k: d[k] for k in KEYS} for d in docs]
    agg.update({k: docs[0][k] for k in ("parameters", "threads", "batch_size", "steps")})
    for k in ("train_flops_per_step", "infer_flops_per_batch", "torch"):
        agg[k] = docs[0].get(k)
    agg["n"] = len(runs)
    return agg


def ratio(b, t, k):
    return statistics.median(rb[k] / rt[k] for rb, rt in zip(b["rounds"], t["rounds"]))


rows = []
for n in names:
    b, t = collect(n, "braid"), collect(n, "torch")
    if b["parameters"] != t["parameters"]:
        sys.exit(f"{n}: braid has {b['parameters']} parameters, the PyTorch peer {t['parameters']}")
    rows.append((n, b, t))

print("| model | params | B | braid train steps/s | PyTorch train steps/s | ratio | braid infer samples/s (B) | "
      "PyTorch infer samples/s (B) | ratio | braid infer/s (B=1) | PyTorch infer/s (B=1) | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, b, t in rows:
    cells = [n, f"{b['parameters']:,}", str(b["batch_size"])]
    for k, fmt in zip(KEYS, ("{:.3f}", "{:.1f}", "{:.1f}")):
        cells += [fmt.format(b[k]), fmt.format(t[k]), f"{ratio(b, t, k):.2f}"]
    print("| " + " | ".join(cells) + " |")
print()
print(f"sgemm peak (braid bench gemm, n={gemm['n']}, {gemm['threads']} threads, median of 5): {peak:.1f} GFLOP/s; "
      f"OPENBLAS_CORETYPE as braid saw it: {gemm['openblas_coretype']}")
unset = os.path.join(out, "gemm_unset.json")
if os.path.exists(unset):
    print(f"sgemm with OPENBLAS_CORETYPE unset (OpenBLAS's own detection): {json.load(open(unset))['gflops']:.1f} GFLOP/s; "
          "the benchmark runs (both sides) used the environment's setting above")
print()
print("| model | GFLOP / train step | braid train GFLOP/s | % of peak | PyTorch train GFLOP/s | % of peak | "
      "GFLOP / infer batch | braid infer GFLOP/s | % of peak | PyTorch infer GFLOP/s | % of peak |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, b, t in rows:
    ft, fi, B = t["train_flops_per_step"] / 1e9, t["infer_flops_per_batch"] / 1e9, t["batch_size"]
    bt, tt = ft * b["train_steps_per_s"], ft * t["train_steps_per_s"]
    bi, ti = fi * b["infer_samples_per_s_b64"] / B, fi * t["infer_samples_per_s_b64"] / B
    print(f"| {n} | {ft:.2f} | {bt:.1f} | {100 * bt / peak:.0f}% | {tt:.1f} | {100 * tt / peak:.0f}% | {fi:.2f} | "
          f"{bi:.1f} | {100 * bi / peak:.0f}% | {ti:.1f} | {100 * ti / peak:.0f}% |")
b0, t0 = rows[0][1], rows[0][2]
print()
print(f"rates: median of {b0['n']} runs per side ({rounds} processes per side x {b0['n'] // rounds} repeats of "
      f"{b0['steps']} steps); ratio = braid / PyTorch (> 1: braid faster), median over rounds of back-to-back "
      f"processes; FLOPs counted by the PyTorch peer (torch profiler, with_flops: matmuls, convs, add/mul; forward "
      f"and backward) and applied to both sides (same model, same ops); threads: braid {b0['threads']}, "
      f"PyTorch {t0['threads']}; PyTorch {t0['torch']}")
