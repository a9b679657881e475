#!/usr/bin/python3
"""Pooled ratios of several bench/engine.sh PARTS=ort outputs: ort_pool.py OUT1 [OUT2 ...] (3 rounds each).

braid --prepack / ORT and braid / ORT per round (back-to-back processes), median over all rounds.
"""
import json, statistics, sys, os
dirs = sys.argv[1:]
for tower in ("image", "text"):
    for key, lab in (("infer_samples_per_s_b64", "32"), ("infer_samples_per_s_b1", "1")):
        rk, rb = [], []
        for d in dirs:
            for r in (1, 2, 3):
                L = lambda s: json.load(open(os.path.join(d, f"ort.{tower}.{s}.{r}.json")))
                k, b, o = L("braidk"), L("braid"), L("ort")
                rk.append(k[key] / o[key]); rb.append(b[key] / o[key])
        print(f"{tower} B={lab}: braid --prepack / ORT median {statistics.median(rk):.2f} (per round {', '.join(f'{x:.2f}' for x in rk)}); braid / ORT median {statistics.median(rb):.2f}")
