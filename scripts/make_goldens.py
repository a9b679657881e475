#!/usr/bin/python3
"""Golden reference fixtures for the data decoders (tests/image_test.cpp, audio_test.cpp, series_test.cpp) and the
concordance (CCC) of objectives/supervised.h and eval/metrics.h (tests/metrics_test.cpp).

Run with Debian's python (python3-torch 1.13 + python3-numpy; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_goldens.py

It rewrites tests/fixtures/golden/ and tests/fixtures/broken/ from fixed seeds; running it again gives
byte-identical files (check with `git status`). No PIL, torchaudio or soundfile: PNG and BMP are encoded by
hand below, WAV with the standard `wave` module, and the mel filterbank is torchaudio's formula in numpy.

References, each computed independently of the C++ code under test:
  image  composite alpha over a grey level with round-half-up to uint8 (the documented C++ contract), then
         torch.nn.functional.interpolate(bilinear, antialias=True, align_corners=False) and (x - mean) / std.
  audio  int16 samples / 32768; torch.stft(center=True, reflect, periodic Hann) in float64;
         torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk") in float64; log(mel + 1e-6).
  resample  a float64 numpy copy of the Kaiser-windowed sinc resampler described in src/braid/data/audio.cpp.
  ccc    Lin's concordance correlation per column from numpy's population moments (np.cov(bias=True), np.var),
         its loss 1 - mean and the loss's gradient by the closed form below (checked against torch autograd),
         and MSE / MAE, all in float64 on float32 inputs.
  lm     a Llama-family decoder (tests/lm_test.cpp) written out by hand in float64 (RMSNorm, RoPE in the
         Hugging Face rotate_half layout, SwiGLU, grouped-query causal attention; no transformers package):
         two tiny random-weight models under Hugging Face state-dict names, in safetensors written here.
Every fixture is < 50 KB.
"""
import json
import math
import os
import struct
import wave
import zlib

import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # e.g. the pyenv python3 on PATH
    sys.exit(f"make_goldens.py: {e}; run it with Debian's python: /usr/bin/python3 scripts/make_goldens.py")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden")
BROKEN = os.path.join(ROOT, "tests", "fixtures", "broken")
MAX_BYTES = 50 * 1024


def write_bytes(path, data):
    assert len(data) < MAX_BYTES, (path, len(data))
    with open(path, "wb") as f:
        f.write(data)


def save_npy(path, a):
    a = np.asarray(a)
    np.save(path, a if a.flags.c_contiguous else np.ascontiguousarray(a))  # (ascontiguousarray makes 0-D 1-D)
    assert os.path.getsize(path) < MAX_BYTES, (path, os.path.getsize(path))


# ---------------------------------------------------------------- image

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def encode_png_rgba(rgba):
    """Minimal PNG encoder (8-bit RGBA). Rows cycle through the five filter types so that the decoder's
    unfiltering (None, Sub, Up, Average, Paeth) is exercised."""
    h, w, _ = rgba.shape
    bpp = 4
    raw = bytearray()
    prev = bytes(w * bpp)
    for y in range(h):
        row = rgba[y].astype(np.uint8).tobytes()
        ftype = y % 5
        out = bytearray(len(row))
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, paeth(a, b, c))[ftype]
            out[i] = (row[i] - pred) & 0xFF
        raw.append(ftype)
        raw += out
        prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
            + png_chunk(b"IEND", b""))


def encode_bmp_rgb(rgb):
    """24-bit bottom-up BMP (BITMAPINFOHEADER), rows padded to 4 bytes."""
    h, w, _ = rgb.shape
    stride = (w * 3 + 3) // 4 * 4
    pixels = bytearray()
    for y in range(h - 1, -1, -1):
        row = rgb[y][:, ::-1].astype(np.uint8).tobytes()  # BGR
        pixels += row + bytes(stride - len(row))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + bytes(pixels)


def composite(rgba, background):
    """The C++ contract: round_half_up(rgb * a + background * 255 * (1 - a)), a = alpha / 255, in float64."""
    rgb = rgba[..., :3].astype(np.float64)
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    bg = background * 255.0
    out = np.floor(rgb * a + bg * (1.0 - a) + 0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def resize(rgb_u8, h, w):
    x = torch.from_numpy(rgb_u8).permute(2, 0, 1).float() / 255.0  # [3, H, W] float32 in [0, 1]
    y = torch.nn.functional.interpolate(x[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return y[0].numpy().astype(np.float32)


def make_images():
    rng = np.random.default_rng(20240601)
    h, w = 17, 23
    yy, xx = np.mgrid[0:h, 0:w]
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = (xx * 255 // (w - 1))
    rgba[..., 1] = (yy * 255 // (h - 1))
    rgba[..., 2] = rng.integers(0, 256, (h, w))
    alpha = rng.integers(0, 256, (h, w))
    alpha[:, 0] = 255        # opaque column
    alpha[:, 1] = 0          # fully transparent column
    alpha[0, :] = 128        # half-transparent row
    alpha[1, :] = np.arange(w) * 255 // (w - 1)  # ramp
    rgba[..., 3] = alpha
    png = encode_png_rgba(rgba)
    write_bytes(os.path.join(GOLDEN, "image.png"), png)
    save_npy(os.path.join(GOLDEN, "image_rgba.npy"), rgba)
    on_white = composite(rgba, 1.0)
    save_npy(os.path.join(GOLDEN, "image_rgb_bg1.npy"), on_white)
    save_npy(os.path.join(GOLDEN, "image_rgb_bg05.npy"), composite(rgba, 0.5))
    save_npy(os.path.join(GOLDEN, "image_resize_8x8.npy"), resize(on_white, 8, 8))
    save_npy(os.path.join(GOLDEN, "image_resize_32x32.npy"), resize(on_white, 32, 32))
    save_npy(os.path.join(GOLDEN, "image_resize_12x40.npy"), resize(on_white, 12, 40))
    # load_image with size 16, ImageNet statistics, background 0.5
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).float().view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).float().view(3, 1, 1)
    x = torch.from_numpy(resize(composite(rgba, 0.5), 16, 16))
    save_npy(os.path.join(GOLDEN, "image_load_16.npy"), ((x - mean) / std).numpy())

    bmp_rgb = rng.integers(0, 256, (3, 5, 3)).astype(np.uint8)
    write_bytes(os.path.join(GOLDEN, "image.bmp"), encode_bmp_rgb(bmp_rgb))
    save_npy(os.path.join(GOLDEN, "image_bmp_rgb.npy"), bmp_rgb)

    # broken images
    write_bytes(os.path.join(BROKEN, "truncated.png"), png[: len(png) // 2])
    write_bytes(os.path.join(BROKEN, "not_an_image.png"), b"this is a text file, not an image\n")
    write_bytes(os.path.join(BROKEN, "empty.png"), b"")
    huge = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 8, 8, 6, 0, 0, 0))
            + png_chunk(b"IEND", b""))
    write_bytes(os.path.join(BROKEN, "huge.png"), huge)  # header claims 20000x8 (> 16384 wide), no pixel data


# ---------------------------------------------------------------- audio

def write_wav(path, int16_frames, sample_rate):
    """int16_frames: [n] mono or [n, channels]."""
    a = np.asarray(int16_frames, dtype="<i2")
    channels = 1 if a.ndim == 1 else a.shape[1]
    with wave.open(path, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(a.tobytes())
    assert os.path.getsize(path) < MAX_BYTES, path


def quantize(x):
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def chirp(t, f0, f1, duration):
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) * t * t))


def melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate):
    """torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk") in float64: [n_freqs, n_mels]."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_min = 2595.0 * math.log10(1.0 + f_min / 700.0)
    m_max = 2595.0 * math.log10(1.0 + f_max / 700.0)
    m_pts = np.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def log_mel(samples, sample_rate, n_fft, hop, n_mels, f_min=0.0, f_max=None):
    x = torch.from_numpy(np.asarray(samples, np.float64))
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=n_fft, window=window, center=True, pad_mode="reflect",
                      normalized=False, onesided=True, return_complex=True)
    power = (spec.abs() ** 2).numpy()  # [n_freqs, frames]
    fb = melscale_fbanks(n_fft // 2 + 1, f_min, f_max if f_max else sample_rate / 2, n_mels, sample_rate)
    return np.log(fb.T @ power + 1e-6).astype(np.float32)  # [n_mels, frames]


# The resampler of src/braid/data/audio.cpp (keep the constants in sync).
ZERO_CROSSINGS, ROLLOFF, KAISER_BETA = 16.0, 0.9, 5.0


def resample(x, from_rate, to_rate):
    x = np.asarray(x, np.float64)
    if from_rate == to_rate:
        return x.astype(np.float32)
    g = math.gcd(from_rate, to_rate)
    M, L = from_rate // g, to_rate // g
    cutoff = ROLLOFF * min(1.0, L / M)
    K = math.ceil(ZERO_CROSSINGS / cutoff)
    k = np.arange(-K, K + 2)
    n = len(x)
    out_len = -(-n * L // M)
    t = np.arange(out_len, dtype=np.int64) * M
    base, phase = t // L, t % L
    u = (k[None, :] - (phase / L)[:, None]) * cutoff
    r = np.clip(1.0 - (u / ZERO_CROSSINGS) ** 2, 0.0, None)
    win = np.where(np.abs(u) < ZERO_CROSSINGS, np.i0(KAISER_BETA * np.sqrt(r)) / np.i0(KAISER_BETA), 0.0)
    h = cutoff * np.sinc(u) * win
    idx = base[:, None] + k[None, :]
    xv = np.where((idx >= 0) & (idx < n), x[np.clip(idx, 0, n - 1)], 0.0)
    return (h * xv).sum(axis=1).astype(np.float32)


def make_audio():
    rng = np.random.default_rng(7)
    # mono: 0.5 s chirp 200 -> 6000 Hz plus white noise at 16 kHz
    sr, n = 16000, 8000
    t = np.arange(n) / sr
    q = quantize(0.5 * chirp(t, 200.0, 6000.0, n / sr) + 0.05 * rng.standard_normal(n))
    write_wav(os.path.join(GOLDEN, "mono16k.wav"), q, sr)
    samples = q.astype(np.float64) / 32768.0
    save_npy(os.path.join(GOLDEN, "mono16k_samples.npy"), samples.astype(np.float32))
    save_npy(os.path.join(GOLDEN, "mono16k_logmel_400_160_64.npy"), log_mel(samples, sr, 400, 160, 64))
    save_npy(os.path.join(GOLDEN, "mono16k_logmel_512_128_40.npy"),
             log_mel(samples, sr, 512, 128, 40, f_min=20.0, f_max=7600.0))
    save_npy(os.path.join(GOLDEN, "melfb_257_40_16000_20_7600.npy"),
             melscale_fbanks(257, 20.0, 7600.0, 40, 16000).astype(np.float32))
    # upsampling 16000 -> 44100 (441 phases) of the first 800 samples
    save_npy(os.path.join(GOLDEN, "mono16k_head800_to44100.npy"), resample(samples[:800].astype(np.float32), sr,
                                                                          44100))
    # 16000 -> 192001 is coprime: 192001 phases, too many to tabulate, so the C++ computes weights per sample
    save_npy(os.path.join(GOLDEN, "mono16k_head400_to192001.npy"), resample(samples[:400].astype(np.float32), sr,
                                                                           192001))

    # stereo: 0.2 s at 22050 Hz, left a 440 Hz tone plus noise, right a chirp
    sr2, n2 = 22050, 4410
    t2 = np.arange(n2) / sr2
    left = quantize(0.4 * np.sin(2 * np.pi * 440.0 * t2) + 0.03 * rng.standard_normal(n2))
    right = quantize(0.3 * chirp(t2, 300.0, 3000.0, n2 / sr2))
    write_wav(os.path.join(GOLDEN, "stereo22k.wav"), np.stack([left, right], axis=1), sr2)
    mono = ((left.astype(np.float64) / 32768.0 + right.astype(np.float64) / 32768.0) / 2.0).astype(np.float32)
    save_npy(os.path.join(GOLDEN, "stereo22k_mono.npy"), mono)
    mono16 = resample(mono, sr2, 16000)  # float32, fed to log-mel as the C++ load_audio does
    save_npy(os.path.join(GOLDEN, "stereo22k_mono_to16k.npy"), mono16)
    save_npy(os.path.join(GOLDEN, "stereo22k_load_400_160_64.npy"), log_mel(mono16, 16000, 400, 160, 64))
    # load_audio with max_seconds = 0.1: the first 1600 samples at 16 kHz
    save_npy(os.path.join(GOLDEN, "stereo22k_load_400_160_64_max0.1s.npy"), log_mel(mono16[:1600], 16000, 400, 160,
                                                                                   64))

    # broken audio
    with open(os.path.join(GOLDEN, "mono16k.wav"), "rb") as f:
        wav = f.read()
    write_bytes(os.path.join(BROKEN, "truncated.wav"), wav[:44])  # RIFF header only, data chunk claims 16000 bytes
    write_bytes(os.path.join(BROKEN, "not_audio.wav"), b"RIFF? no, just some text pretending to be audio\n")
    write_bytes(os.path.join(BROKEN, "empty.wav"), b"")


# ---------------------------------------------------------------- series and npy

def npy_bytes(header_dict_text, data, version=(1, 0)):
    """A hand-made .npy (for broken fixtures): magic, version, little-endian header length, padded header, data."""
    header = header_dict_text.encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * (pad % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack("<H", len(header)) + header + data


def make_series():
    rng = np.random.default_rng(99)
    s = (rng.standard_normal((20, 3)) * np.array([1.0, 10.0, 0.01])).astype(np.float32)
    s[0] = [0.0, -1.5, 1e-3]
    save_npy(os.path.join(GOLDEN, "series.npy"), s)
    lines = ["t,x,y"]
    for i, row in enumerate(s):
        lines.append(",".join("%.9g" % v for v in row))
        if i == 9:
            lines.append("")  # a blank line in the middle is skipped
    write_bytes(os.path.join(GOLDEN, "series.csv"), ("\n".join(lines) + "\n").encode())
    save_npy(os.path.join(GOLDEN, "series_1d_f8.npy"), np.linspace(-2.0, 2.0, 15))
    save_npy(os.path.join(GOLDEN, "series_i4.npy"), np.arange(-6, 6, dtype=np.int32).reshape(4, 3))
    save_npy(os.path.join(GOLDEN, "npy_u1.npy"), np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    save_npy(os.path.join(GOLDEN, "npy_b1.npy"), np.array([True, False, True, True]))
    save_npy(os.path.join(GOLDEN, "npy_i2.npy"), np.array([[-32768, 0], [1, 32767]], dtype="<i2"))
    save_npy(os.path.join(GOLDEN, "npy_i8.npy"), np.array([-(2 ** 40), 0, 2 ** 40 + 1], dtype="<i8"))
    save_npy(os.path.join(GOLDEN, "npy_scalar_f8.npy"), np.array(3.25))

    # broken series / npy
    write_bytes(os.path.join(BROKEN, "nan.csv"), b"a,b,c\n1,2,3\n4,nan,6\n7,8,9\n")
    write_bytes(os.path.join(BROKEN, "ragged.csv"), b"1,2,3\n4,5,6\n7,8\n")
    write_bytes(os.path.join(BROKEN, "bad_cell.csv"), b"1,2\n3,oops\n")
    write_bytes(os.path.join(BROKEN, "header_only.csv"), b"time,value\n\n")
    write_bytes(os.path.join(BROKEN, "bad_header.npy"),
                npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4", bytes(48)))
    write_bytes(os.path.join(BROKEN, "short_data.npy"),
                npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", bytes(16)))
    write_bytes(os.path.join(BROKEN, "fortran.npy"),
                npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", bytes(48)))
    write_bytes(os.path.join(BROKEN, "big_endian.npy"),
                npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }",
                          np.array([1, 2, 3], ">f4").tobytes()))
    write_bytes(os.path.join(BROKEN, "rank3.npy"),
                npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", bytes(32)))
    inf = np.ones((5, 2), np.float32)
    inf[3, 1] = np.inf
    write_bytes(os.path.join(BROKEN, "inf.npy"),
                npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 2), }", inf.tobytes()))


# ---------------------------------------------------------------- concordance (CCC)

def make_ccc():
    """Predictions and targets [N, D] (float32, so the C++ may feed them as model outputs) whose columns
    cover the cases CCC must tell apart; expected concordance, 1 - mean CCC, its gradient, MSE and MAE."""
    rng = np.random.default_rng(31)
    n = 40
    t = rng.standard_normal((n, 6)) * np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0]) + np.array([0.0, 1.0, -2.0, 0.5, 0.0, 4.0])
    p = np.empty_like(t)
    p[:, 0] = t[:, 0] + 0.3 * rng.standard_normal(n)   # close: CCC near 1
    p[:, 1] = 2.0 * t[:, 1] + 1.0                       # perfectly correlated, wrong scale and offset: CCC < 1
    p[:, 2] = t[:, 2]                                   # identical: CCC = 1
    p[:, 3] = 0.25                                      # constant: CCC = 0
    p[:, 4] = -t[:, 4] + 0.5 * rng.standard_normal(n)  # anti-correlated: CCC near -1
    p[:, 5] = t[:, 5] - 3.0                             # right shape, shifted: pearson 1, CCC small
    t = t.astype(np.float32)
    p = p.astype(np.float32)
    p[:, 2] = t[:, 2]
    x, y = p.astype(np.float64), t.astype(np.float64)
    d = x.shape[1]
    ccc = np.empty(d)
    for j in range(d):
        cov = np.cov(x[:, j], y[:, j], bias=True)[0, 1]
        ccc[j] = 2.0 * cov / (np.var(x[:, j]) + np.var(y[:, j]) + (x[:, j].mean() - y[:, j].mean()) ** 2)
    # d(1 - mean_j ccc_j) / dx_ij = -(1/D) dccc_j/dx_ij, with num = 2 cov, den = vx + vy + (mx - my)^2:
    #   dnum/dx_i = 2 (y_i - my) / N,  dden/dx_i = 2 (x_i - mx) / N + 2 (mx - my) / N
    mx, my = x.mean(0), y.mean(0)
    num = 2.0 * ((x - mx) * (y - my)).mean(0)
    den = x.var(0) + y.var(0) + (mx - my) ** 2
    dnum = 2.0 * (y - my) / n
    dden = 2.0 * (x - mx) / n + 2.0 * (mx - my) / n
    grad = -(dnum * den - num * dden) / den ** 2 / d
    # the same gradient by autograd, as a check of the algebra
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y)
    mxt, myt = xt.mean(0), yt.mean(0)
    cct = 2 * ((xt - mxt) * (yt - myt)).mean(0) / (((xt - mxt) ** 2).mean(0) + ((yt - myt) ** 2).mean(0) + (mxt - myt) ** 2)
    (1 - cct.mean()).backward()
    assert np.allclose(xt.grad.numpy(), grad, rtol=0, atol=1e-14), np.abs(xt.grad.numpy() - grad).max()
    assert np.allclose(cct.detach().numpy(), ccc, rtol=0, atol=1e-14)
    assert abs(ccc[2] - 1.0) < 1e-15 and abs(ccc[3]) < 1e-15 and ccc[1] < 0.9 and ccc[4] < -0.8 and ccc[5] < 0.2
    save_npy(os.path.join(GOLDEN, "ccc_pred.npy"), p)
    save_npy(os.path.join(GOLDEN, "ccc_target.npy"), t)
    save_npy(os.path.join(GOLDEN, "ccc_concordance.npy"), ccc)
    save_npy(os.path.join(GOLDEN, "ccc_loss.npy"), np.array([1.0 - ccc.mean()]))
    save_npy(os.path.join(GOLDEN, "ccc_loss_grad.npy"), grad)
    save_npy(os.path.join(GOLDEN, "ccc_mse_mae.npy"), np.array([((x - y) ** 2).mean(), np.abs(x - y).mean()]))


# ---------------------------------------------------------------- language model (nn/lm)

def write_safetensors(path, tensors):
    """The safetensors layout by hand (no safetensors package in Debian): 8-byte little-endian header length,
    a JSON header {name: {dtype, shape, data_offsets}} (names sorted, padded with spaces to 8 bytes), then the
    raw little-endian tensors back to back."""
    kinds = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": kinds[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    write_bytes(path, struct.pack("<Q", len(text)) + text + b"".join(blobs))


# Two tiny models; tests/lm_test.cpp builds the same LMOptions (keep them in sync).
LM_LLAMA = dict(vocab_size=32, dim=24, layers=2, heads=4, kv_heads=2, hidden=40, rope_theta=10000.0, norm_eps=1e-5,
                max_seq=64, tie_embeddings=False, attention_bias=False)
LM_QWEN = dict(vocab_size=32, dim=24, layers=1, heads=4, kv_heads=1, hidden=40, rope_theta=1000000.0, norm_eps=1e-6,
               max_seq=64, tie_embeddings=True, attention_bias=True)


def lm_random_weights(c, g):
    """Hugging Face LlamaForCausalLM names and shapes. Weights far from the usual N(0, 0.02) so that every
    part of the math moves the outputs well beyond the tests' 1e-5 tolerance while logits stay O(1) (an fp32
    result of magnitude 10 is only good to ~1e-5): embeddings N(0, 0.09), norms 1 + N(0, 0.3), linear
    weights N(0, 1/fan_in) scaled up, biases N(0, 0.5)."""
    D, F, V, H, G = c["dim"], c["hidden"], c["vocab_size"], c["heads"], c["kv_heads"]
    d = D // H

    def lin(o, i, gain=1.5):
        return torch.randn(o, i, generator=g) * (gain / math.sqrt(i))

    def norm(n):
        return 1.0 + 0.3 * torch.randn(n, generator=g)

    w = {"model.embed_tokens.weight": 0.3 * torch.randn(V, D, generator=g)}  # tied: logits stay O(1)
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = lin(H * d, D, 3.0)
        w[p + "self_attn.k_proj.weight"] = lin(G * d, D, 3.0)
        w[p + "self_attn.v_proj.weight"] = lin(G * d, D)
        w[p + "self_attn.o_proj.weight"] = lin(D, H * d)
        if c["attention_bias"]:
            for n, o in (("q", H * d), ("k", G * d), ("v", G * d)):
                w[p + f"self_attn.{n}_proj.bias"] = 0.5 * torch.randn(o, generator=g)
        w[p + "mlp.gate_proj.weight"] = lin(F, D)
        w[p + "mlp.up_proj.weight"] = lin(F, D)
        w[p + "mlp.down_proj.weight"] = lin(D, F)
        w[p + "input_layernorm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(D)
    w["model.norm.weight"] = norm(D)
    if not c["tie_embeddings"]:
        w["lm_head.weight"] = lin(V, D)
    return {k: v.float() for k, v in w.items()}


# The reference math, written from the Llama papers' definitions in float64 on the float32 weights (no
# transformers package): RMSNorm (Zhang & Sennrich 2019), RoPE with the Hugging Face "rotate_half" layout
# (the two halves of a head are the pair coordinates), SwiGLU (Shazeer 2020), grouped-query attention
# (Ainslie et al. 2023; query head h reads kv head h // (H / G)), causal mask, pre-norm blocks.

def ref_rmsnorm(x, w, eps):
    x = x.double()
    return w.double() * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def ref_rope_tables(pos, d, theta):
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # [d/2]
    ang = pos.double()[..., None] * inv                                      # [B, T, d/2]
    ang = torch.cat([ang, ang], -1)
    return ang.cos(), ang.sin()


def ref_rotate(x, cos, sin):
    """x [B, n, T, d]; cos/sin [B, T, d]."""
    h = x.shape[-1] // 2
    x = x.double()
    rot = torch.cat([-x[..., h:], x[..., :h]], -1)
    return x * cos[:, None] + rot * sin[:, None]


def ref_swiglu(x, w, p):
    x = x.double()
    gate = x @ w[p + "mlp.gate_proj.weight"].double().T
    up = x @ w[p + "mlp.up_proj.weight"].double().T
    return (gate * torch.sigmoid(gate) * up) @ w[p + "mlp.down_proj.weight"].double().T


def ref_attention(x, w, p, c, pos, key_mask=None):
    """x [B, T, D] -> [B, T, D]; key_mask [B, T] (1 real, 0 padding) or None."""
    B, T, D = x.shape
    H, G = c["heads"], c["kv_heads"]
    d = D // H
    x = x.double()

    def proj(n, heads):
        y = x @ w[p + f"self_attn.{n}_proj.weight"].double().T
        if p + f"self_attn.{n}_proj.bias" in w:
            y = y + w[p + f"self_attn.{n}_proj.bias"].double()
        return y.view(B, T, heads, d).transpose(1, 2)

    cos, sin = ref_rope_tables(pos, d, c["rope_theta"])
    q, k, v = ref_rotate(proj("q", H), cos, sin), ref_rotate(proj("k", G), cos, sin), proj("v", G)
    k, v = k.repeat_interleave(H // G, dim=1), v.repeat_interleave(H // G, dim=1)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None].expand(B, 1, T, T)
    if key_mask is not None:
        allowed = allowed & key_mask.bool()[:, None, None, :]
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    s = s.masked_fill(~allowed, torch.finfo(torch.float64).min)
    o = torch.softmax(s, -1) @ v                                            # [B, H, T, d]
    return o.transpose(1, 2).reshape(B, T, H * d) @ w[p + "self_attn.o_proj.weight"].double().T


def ref_logits(ids, w, c, pos=None, key_mask=None):
    B, T = ids.shape
    if pos is None:
        pos = torch.arange(T)[None].expand(B, T)
    h = w["model.embed_tokens.weight"].double()[ids]
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        h = h + ref_attention(ref_rmsnorm(h, w[p + "input_layernorm.weight"], c["norm_eps"]), w, p, c, pos, key_mask)
        h = h + ref_swiglu(ref_rmsnorm(h, w[p + "post_attention_layernorm.weight"], c["norm_eps"]), w, p)
    h = ref_rmsnorm(h, w["model.norm.weight"], c["norm_eps"])
    head = w["model.embed_tokens.weight"] if c["tie_embeddings"] else w["lm_head.weight"]
    return h @ head.double().T


def make_lm():
    """tests/lm_test.cpp: lm_llama_tiny.safetensors and lm_qwen_tiny.safetensors (weights under Hugging Face
    names) and lm_golden.safetensors (inputs and expected outputs, float32; ids and positions int64)."""
    g = torch.Generator().manual_seed(1515)
    c = LM_LLAMA
    w = lm_random_weights(c, g)
    wq = lm_random_weights(LM_QWEN, g)
    write_safetensors(os.path.join(GOLDEN, "lm_llama_tiny.safetensors"), w)
    write_safetensors(os.path.join(GOLDEN, "lm_qwen_tiny.safetensors"), wq)
    D, d = c["dim"], c["dim"] // c["heads"]
    B, T = 2, 5
    io = {}
    p0 = "model.layers.0."
    x = torch.randn(B, T, D, generator=g) * 2.0 + 0.5
    io["rmsnorm_x"], io["rmsnorm_y"] = x, ref_rmsnorm(x, w[p0 + "input_layernorm.weight"], c["norm_eps"])
    # RoPE on query [B, H, T, d] and key [B, G, T, d] heads at arbitrary positions (< max_seq)
    io["rope_q"] = torch.randn(B, c["heads"], T, d, generator=g)
    io["rope_k"] = torch.randn(B, c["kv_heads"], T, d, generator=g)
    io["rope_pos"] = torch.tensor([[0, 1, 2, 3, 4], [7, 3, 63, 5, 30]], dtype=torch.int64)
    cos, sin = ref_rope_tables(io["rope_pos"], d, c["rope_theta"])
    io["rope_q_out"], io["rope_k_out"] = ref_rotate(io["rope_q"], cos, sin), ref_rotate(io["rope_k"], cos, sin)
    x = torch.randn(B, T, D, generator=g)
    io["swiglu_x"], io["swiglu_y"] = x, ref_swiglu(x, w, p0)
    x = torch.randn(B, T, D, generator=g)
    io["attn_x"], io["attn_y"] = x, ref_attention(x, w, p0, c, torch.arange(T)[None].expand(B, T))
    ids = torch.randint(0, c["vocab_size"], (B, 7), generator=g)
    io["llama_ids"], io["llama_logits"] = ids, ref_logits(ids, w, c)
    # row 1 left-padded by two: positions count real tokens only (cumsum(mask) - 1, clamped at 0)
    mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1]], dtype=torch.int64)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    io["llama_pad_mask"], io["llama_pad_logits"] = mask, ref_logits(ids, w, c, pos, mask)
    ids = torch.randint(0, LM_QWEN["vocab_size"], (B, 7), generator=g)
    io["qwen_ids"], io["qwen_logits"] = ids, ref_logits(ids, wq, LM_QWEN)
    io = {k: (v if v.dtype == torch.int64 else v.float()) for k, v in io.items()}
    write_safetensors(os.path.join(GOLDEN, "lm_golden.safetensors"), io)


def main():
    os.makedirs(GOLDEN, exist_ok=True)
    os.makedirs(BROKEN, exist_ok=True)
    torch.manual_seed(0)
    make_images()
    make_audio()
    make_series()
    make_ccc()
    make_lm()
    for d in (GOLDEN, BROKEN):
        for name in sorted(os.listdir(d)):
            size = os.path.getsize(os.path.join(d, name))
            assert size < MAX_BYTES, (name, size)
    print(f"wrote {len(os.listdir(GOLDEN))} files to {GOLDEN} and {len(os.listdir(BROKEN))} to {BROKEN}")


if __name__ == "__main__":
    main()
