#!/usr/bin/python3
"""Python peer of `braid bench pipeline` (bench/pipeline_speed.sh): the same preprocessing, without torch.

image: PIL decode -> RGBA -> alpha composited over white (braid's rounding) -> per-channel float resize to
       32x32 with PIL's antialiased bilinear filter (the filter braid's resize reproduces) -> (x - 0.5) / 0.5
audio: WAV via the `wave` module -> mono float -> windowed-sinc resampling to 16 kHz (Kaiser beta 5, 16 zero
       crossings, rolloff 0.9; the filter taps tabulated once per phase, as braid does) -> STFT (n_fft 400,
       hop 160, periodic Hann, centre with reflect padding) -> 64 HTK mel bands -> log(x + 1e-6) -> per-utterance
       mean/variance normalization

One untimed pass, then --repeats timed passes; prints one JSON line with the median samples/s.
--workers N > 1 uses a multiprocessing pool of N processes (created before timing).
Usage: /usr/bin/python3 bench/peer/pipeline_peer.py --data M.jsonl --modality image|audio [--workers N]
       [--limit N] [--repeats R] [--dump first.npy]
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
import wave

import numpy as np
from PIL import Image

if "torch" in sys.modules:
    sys.exit("pipeline_peer.py must not use torch")

SIZE, MEAN, STD, BACKGROUND = 32, 0.5, 0.5, 1.0
RATE, N_FFT, HOP, N_MELS = 16000, 400, 160, 64
ZERO_CROSSINGS, ROLLOFF, KAISER_BETA = 16.0, 0.9, 5.0


def load_image(path):
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
    a = rgba[..., 3:4] / 255.0
    rgb = np.floor(rgba[..., :3] * a + BACKGROUND * 255.0 * (1.0 - a) + 0.5) / 255.0
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c], dtype=np.float32), mode="F")
                        .resize((SIZE, SIZE), Image.BILINEAR)) for c in range(3)]
    return (np.stack(chans) - MEAN) / STD  # [3, SIZE, SIZE] float32


def read_wav(path):
    with wave.open(path, "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM is handled by the peer")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x, rate


_TABLES = {}


def resample(x, from_rate, to_rate):
    if from_rate == to_rate:
        return x
    g = math.gcd(from_rate, to_rate)
    M, L = from_rate // g, to_rate // g
    if (M, L) not in _TABLES:
        cutoff = ROLLOFF * min(1.0, L / M)
        K = math.ceil(ZERO_CROSSINGS / cutoff)
        k = np.arange(-K, K + 2)
        u = (k[None, :] - (np.arange(L) / L)[:, None]) * cutoff
        r = np.clip(1.0 - (u / ZERO_CROSSINGS) ** 2, 0.0, None)
        win = np.where(np.abs(u) < ZERO_CROSSINGS, np.i0(KAISER_BETA * np.sqrt(r)) / np.i0(KAISER_BETA), 0.0)
        _TABLES[(M, L)] = (K, k, (cutoff * np.sinc(u) * win).astype(np.float32))
    K, k, h = _TABLES[(M, L)]
    n = len(x)
    out_len = -(-n * L // M)
    t = np.arange(out_len, dtype=np.int64) * M
    base, phase = t // L, t % L
    xp = np.pad(x, (K, K + 2))
    return np.einsum("ij,ij->i", h[phase], xp[base[:, None] + k[None, :] + K])


def mel_filterbank(n_freqs, f_min, f_max, n_mels, sample_rate):
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(2595.0 * math.log10(1.0 + f_min / 700.0), 2595.0 * math.log10(1.0 + f_max / 700.0), n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    return np.maximum(0.0, np.minimum(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:])).astype(np.float32)


FB = mel_filterbank(N_FFT // 2 + 1, 0.0, RATE / 2, N_MELS, RATE)
WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def load_audio(path):
    x, rate = read_wav(path)
    x = resample(x, rate, RATE).astype(np.float32)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    xp = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = 1 + (len(xp) - N_FFT) // HOP
    fr = np.lib.stride_tricks.as_strided(xp, (frames, N_FFT), (xp.strides[0] * HOP, xp.strides[0]))
    spec = np.fft.rfft(fr * WINDOW, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)  # [frames, n_freqs]
    m = np.log(power @ FB + 1e-6).T  # [n_mels, frames]
    return ((m - m.mean()) / max(float(m.std()), 1e-3)).astype(np.float32)


def process(job):
    modality, path = job
    return float((load_image(path) if modality == "image" else load_audio(path)).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--modality", choices=["image", "audio"], default="image")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dump", default="")
    a = ap.parse_args()
    root = os.path.dirname(os.path.abspath(a.data))
    files = []
    with open(a.data) as f:
        for line in f:
            if not line.strip():
                continue
            p = json.loads(line).get(a.modality)
            if p:
                files.append(p if os.path.isabs(p) else os.path.join(root, p))
                if a.limit and len(files) >= a.limit:
                    break
    jobs = [(a.modality, p) for p in files]
    if a.dump:
        np.save(a.dump, load_image(files[0]) if a.modality == "image" else load_audio(files[0]))
    pool = mp.Pool(a.workers) if a.workers > 1 else None

    def one_pass():
        if pool:
            return sum(pool.imap(process, jobs, chunksize=16))
        return sum(process(j) for j in jobs)

    checksum = one_pass()  # warm-up
    runs = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        one_pass()
        runs.append(len(jobs) / (time.perf_counter() - t0))
    if pool:
        pool.close()
        pool.join()
    assert "torch" not in sys.modules
    print(json.dumps({"modality": a.modality, "samples": len(jobs), "workers": a.workers, "runs": runs,
                      "samples_per_s": statistics.median(runs), "checksum": checksum}))


if __name__ == "__main__":
    main()
