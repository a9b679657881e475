#!/usr/bin/env python3
"""TensorBoard reference fixture for tests/tensorboard_test.cpp, and a reader for braid's event files.

  make_tb_fixture.py write [--out tests/fixtures/tensorboard]
      Writes an event file with the real torch.utils.tensorboard.SummaryWriter (renamed to
      summary_writer.tfevents) and expected.json: the tags, steps, wall times and float32 values
      it holds. braid's reader must decode exactly these.
  make_tb_fixture.py read PATH
      Reads PATH (an event file or a log dir, e.g. a braid run directory) with TensorBoard's own
      event_accumulator and prints one line per scalar: tag, step, value.

Needs torch and tensorboard, which Debian's python3-torch lacks; at setup time only:
  /usr/bin/python3 -m venv --system-site-packages /tmp/tbvenv && /tmp/tbvenv/bin/pip install tensorboard
  /tmp/tbvenv/bin/python scripts/make_tb_fixture.py write
The tests never run this script; they read the committed files.
"""
import argparse
import glob
import json
import os
import shutil
import struct
import sys
import tempfile


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def write(out):
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(out, exist_ok=True)
    # (tag, step, value, wall_time): zero and negative steps, a step past 2^32 (a multi-byte
    # varint), values that float32 rounds, negatives, a tiny and a huge one.
    rows = [
        ("train/loss", 0, 2.302585092994046, 1700000000.25),
        ("train/loss", 1, 1.75, 1700000001.5),
        ("train/loss", 2, 1.0 / 3.0, 1700000002.75),
        ("train/lr", 1, 1e-3, 1700000001.5),
        ("train/lr", 2, 3.14159265358979, 1700000002.75),
        ("val/accuracy", 7, 0.625, 1700000010.0),
        ("val/accuracy", 5000000000, 0.96875, 1700000020.0),
        ("grad/neg", -3, -123.456, 1700000030.0),
        ("grad/tiny", 11, 1.5e-30, 1700000031.0),
        ("grad/huge", 12, 3.0e38, 1700000032.0),
    ]
    tmp = tempfile.mkdtemp(prefix="braid-tb-")
    try:
        w = SummaryWriter(log_dir=tmp)
        for tag, step, value, wall in rows:
            w.add_scalar(tag, value, global_step=step, walltime=wall)
        w.close()
        files = glob.glob(os.path.join(tmp, "*tfevents*"))
        assert len(files) == 1, files
        shutil.copyfile(files[0], os.path.join(out, "summary_writer.tfevents"))
    finally:
        shutil.rmtree(tmp)
    expected = {
        "file_version": "brain.Event:2",
        "scalars": [{"tag": t, "step": s, "value": f32(v), "wall_time": wt} for t, s, v, wt in rows],
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"wrote {out}/summary_writer.tfevents and expected.json ({len(rows)} scalars)")


def read(path):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    n = 0
    for tag in sorted(acc.Tags()["scalars"]):
        for e in acc.Scalars(tag):
            print(f"{tag}\t{e.step}\t{e.value!r}")
            n += 1
    print(f"{n} scalars read by tensorboard.backend.event_processing.event_accumulator from {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tensorboard"))
    r = sub.add_parser("read")
    r.add_argument("path")
    a = ap.parse_args()
    if a.cmd == "write":
        write(os.path.normpath(a.out))
    else:
        read(a.path)


if __name__ == "__main__":
    main()
