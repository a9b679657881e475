#!/usr/bin/python3
"""Side-by-side GPU kernel times of two profiler traces (Chrome JSON): braid's (`braid bench speed
--profile`) and the PyTorch peer's (`clip_peer.py --trace`), both of the same work (2 training steps
+ 2 inference batches). trace_table.py BRAID_TRACE PEER_TRACE [TOP]

Prints the total kernel time of each trace, then the TOP kernels by time in either, with calls and
milliseconds on each side, so a gap between the two runs shows up as the kernels that cause it."""
import json
import sys
from collections import defaultdict

GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}


def kernels(path):
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    by = defaultdict(lambda: [0, 0.0])
    for e in events:
        if e.get("ph") == "X" and e.get("cat") in GPU_CATS:
            k = by[e.get("name", "?")]
            k[0] += 1
            k[1] += float(e.get("dur", 0)) / 1000.0  # us -> ms
    return by


def short(name, n=95):
    return name if len(name) <= n else name[: n - 3] + "..."


def main():
    a, b = kernels(sys.argv[1]), kernels(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    if not a and not b:
        sys.exit("trace_table: no GPU kernels in either trace (a CPU run?)")
    ta, tb = sum(v[1] for v in a.values()), sum(v[1] for v in b.values())
    print(f"GPU kernel time, 2 train steps + 2 inference batches: braid {ta:.1f} ms ({sum(v[0] for v in a.values())} "
          f"kernels), PyTorch {tb:.1f} ms ({sum(v[0] for v in b.values())} kernels)\n")
    print("| kernel | braid calls | braid ms | PyTorch calls | PyTorch ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    names = sorted(set(a) | set(b), key=lambda k: -max(a.get(k, [0, 0])[1], b.get(k, [0, 0])[1]))
    for k in names[:top]:
        ca, ma = a.get(k, [0, 0.0])
        cb, mb = b.get(k, [0, 0.0])
        print(f"| `{short(k)}` | {ca} | {ma:.2f} | {cb} | {mb:.2f} |")


if __name__ == "__main__":
    main()
