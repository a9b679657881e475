#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ and the hand-made regression inputs of
fuzz/regressions/<target>/ that are not fuzzer finds (run by hand; the files are committed).

    /tmp/braid-hf-venv/bin/python fuzz/make_corpus.py     # needs numpy and Pillow (scripts/hf/venv.sh)

Every seed is small (< 4 KB: libFuzzer's default -max_len follows the largest seed) and valid, or
nearly so, for its parser, so mutations start inside the format. FLAC and OGG seeds are written
through libsndfile (ctypes), the library braid decodes them with; the OGG seed differs from run to run
(libsndfile picks a random stream serial number), the other files are byte-identical.
"""
import ctypes
import ctypes.util
import io
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))


def put(kind, target, name, data):
    d = os.path.join(ROOT, kind, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def seed(target, name, data):
    put("corpus", target, name, data)


def regression(target, name, data):
    put("regressions", target, name, data)


def png(img, **kw):
    b = io.BytesIO()
    img.save(b, format="PNG", **kw)
    return b.getvalue()


def images():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), "RGB")
    seed("image", "rgb_4x5.png", png(rgb))
    seed("image", "rgba_3x3.png", png(Image.fromarray(rng.integers(0, 256, (3, 3, 4), dtype=np.uint8), "RGBA")))
    seed("image", "grey16_4x4.png", png(Image.fromarray(rng.integers(0, 65535, (4, 4), dtype=np.uint16))))
    seed("image", "palette_4x4.png", png(rgb.convert("P")))
    seed("image", "interlaced_8x8.png", png(rgb.resize((8, 8)), optimize=False))
    for name, kw in [("baseline_8x8.jpg", {}), ("progressive_8x8.jpg", {"progressive": True}),
                     ("grey_8x8.jpg", {})]:
        b = io.BytesIO()
        im = rgb.resize((8, 8))
        if name.startswith("grey"):
            im = im.convert("L")
        im.save(b, format="JPEG", quality=70, **kw)
        seed("image", name, b.getvalue())
    for name, im in [("rgb_4x4.bmp", rgb.resize((4, 4))), ("palette_4x4.bmp", rgb.resize((4, 4)).convert("P"))]:
        b = io.BytesIO()
        im.save(b, format="BMP")
        seed("image", name, b.getvalue())


def wav_bytes(samples, rate, channels=1, fmt="h"):
    data = np.asarray(samples)
    if fmt == "h":
        raw = (np.clip(data, -1, 1) * 32767).astype("<i2").tobytes()
        tag, bits = 1, 16
    else:
        raw = data.astype("<f4").tobytes()
        tag, bits = 3, 32
    block = channels * bits // 8
    hdr = b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVE"
    hdr += b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, rate, rate * block, block, bits)
    return hdr + b"data" + struct.pack("<I", len(raw)) + raw


def sndfile_bytes(samples, rate, major, minor, suffix):
    """FLAC/OGG through libsndfile's sf_open/sf_write_float into a temp file."""
    lib = ctypes.CDLL(ctypes.util.find_library("sndfile") or "libsndfile.so.1")

    class SFInfo(ctypes.Structure):
        _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                    ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]

    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SFInfo)]
    lib.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    info = SFInfo(0, rate, 1, major | minor, 0, 0)
    path = f"/tmp/braid-fuzz-seed{suffix}"
    h = lib.sf_open(path.encode(), 0x20, ctypes.byref(info))  # SFM_WRITE
    if not h:
        sys.exit(f"libsndfile cannot write {suffix}")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    lib.sf_writef_float(h, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), len(x))
    lib.sf_close(h)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def audio():
    t = np.arange(200) / 8000.0
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    seed("audio", "mono_8k_pcm16.wav", wav_bytes(tone, 8000))
    seed("audio", "stereo_22k_f32.wav", wav_bytes(np.stack([tone, -tone], 1)[:100], 22050, 2, "f"))
    seed("audio", "mono_16k.flac", sndfile_bytes(tone, 16000, 0x170000, 0x0002, ".flac"))  # FLAC | PCM_16
    seed("audio", "mono_8k.ogg", sndfile_bytes(np.tile(tone, 4), 8000, 0x200000, 0x0060, ".ogg"))  # OGG | VORBIS


def npy_bytes(a, version=1):
    b = io.BytesIO()
    if version == 1:
        np.save(b, a)
        return b.getvalue()
    np.lib.format.write_array(b, a, version=(version, 0))
    return b.getvalue()


def series():
    seed("series_csv", "header.csv", "t,x,y\n0,1.5,2\n1,-3e2,4.25\n2,0.0,1e-3\n")
    seed("series_csv", "plain.csv", "1,2,3\n4,5,6\n\n7,8,9\r\n")
    seed("series_csv", "one_column.csv", "0.5\n+1\n-2.5e1\n")
    seed("series_csv", "nan.csv", "a,b\n1,nan\n")
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    seed("npy", "f4_4x3.npy", npy_bytes(a))
    seed("npy", "f8_1d.npy", npy_bytes(np.linspace(0, 1, 5)))
    seed("npy", "i4_2x2.npy", npy_bytes(np.array([[1, 2], [3, 4]], dtype=np.int32)))
    seed("npy", "b1.npy", npy_bytes(np.array([True, False, True])))
    seed("npy", "u1_scalar.npy", npy_bytes(np.array(7, dtype=np.uint8)))
    seed("npy", "v2_f4.npy", npy_bytes(a, version=2))
    seed("npy", "empty_0x3.npy", npy_bytes(np.zeros((0, 3), dtype=np.float32)))


def manifest():
    lines = [
        {"id": "a", "split": "train", "label": "heart", "text": "a red heart", "series": [[1, 2], [3, 4]]},
        {"id": "b", "split": "val", "label": 3, "target": [0.5, -1], "group": "g1", "image": "img/b.png"},
        {"id": "c", "split": "test", "text": {"caption": "x", "title": "caf\u00e9 \u2764"}, "audio": "c.wav",
         "target": [1, 2], "series": [1.5, 2.5, 3.5]},
    ]
    seed("manifest", "three.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    seed("manifest", "series_path.jsonl", '{"id": "s", "split": "train", "series": "s.csv", "group": 7}\r\n\n')


def recipe():
    seed("recipe", "small.yaml", "task: classify\nmodel:\n  name: late_fusion\n  encoders:\n    image: {name: cnn, dim: 32}\n"
         "    text: {name: bow, dim: 16}\ntrain:\n  epochs: 2\n  lr: 1.0e-3\n  batch_size: 8\n  modalities: [image, text]\n")
    seed("recipe", "anchors.yaml", "base: &b {dim: 8, dropout: 0.1}\nmodel:\n  encoders:\n    a: *b\n    b:\n      <<: *b\n"
         "      dim: 4\nlist: [1, 2.5, x, true, ~]\n")
    # Written by hand while fixing the fuzzer's recipe finding: a non-scalar key (was a YAML::BadConversion,
    # not an InputError) and a value holding a newline (echoed into a type error's message).
    regression("recipe", "sequence_as_key.yaml", "? [a, b]\n: 1\n")
    regression("recipe", "value_with_newline.yaml", 'a: "x\\ny"\nb: [1, 2]\n')
    here = os.path.join(ROOT, "..", "recipes", "emoji_clip.yaml")
    with open(here, "rb") as f:
        seed("recipe", "emoji_clip.yaml", f.read())


def st_bytes(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def safetensors():
    a = np.arange(6, dtype=np.float32).reshape(2, 3).tobytes()
    b = np.array([1, -2], dtype=np.int64).tobytes()
    seed("safetensors", "two.safetensors",
         st_bytes({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                   "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}, a + b))
    seed("safetensors", "scalar_bf16.safetensors",
         st_bytes({"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]}}, b"\x80\x3f"))
    seed("safetensors", "empty.safetensors", st_bytes({"e": {"dtype": "U8", "shape": [0, 4], "data_offsets": [0, 0]}}))
    # numel * itemsize wrapped to 0 before the checked arithmetic: [2^31, 2^30] x 8 bytes = 2^64 -> 0 bytes,
    # which matched data_offsets [0, 0], and torch::empty then failed with a c10::Error instead of an InputError.
    regression("safetensors", "numel_times_size_wraps.safetensors",
               st_bytes({"w": {"dtype": "F64", "shape": [2 ** 31, 2 ** 30], "data_offsets": [0, 0]}}))


def text():
    for i, s in enumerate(["a red heart on a white background", "caf\u00e9 \u2764\ufe0f \U0001F600 smile",
                           "<|user|> what is this? <|assistant|> a cat", "\u65e5\u672c\u8a9e  tabs\tand\nnewlines"]):
        seed("tokenizer", f"text{i}.txt", s)
    seed("tokenizer", "invalid_utf8.bin", b"ok \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 end")
    seed("chat", "image_answer.bin", bytes([0x80 | (2 << 2) | 1]) + b"what is in the picture?\x00a red heart")
    seed("chat", "text_prompt_only.bin", bytes([0]) + "caf\u00e9 \u2764".encode())
    seed("chat", "audio_answer.bin", bytes([0x80 | (7 << 2) | 2]) + b"which digit?\x00seven <eos> <|user|>")


def main():
    images()
    audio()
    series()
    manifest()
    recipe()
    safetensors()
    text()


if __name__ == "__main__":
    main()
