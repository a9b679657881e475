"""Tests of the Python module `braid` (python/braid_py.cpp, docs/python.md).

    PYTHONPATH=build/python BRAID_EXE=build/apps/braid/braid /usr/bin/python3 tests/python/test_braid.py
    ctest --test-dir build -R Python     # the same, registered by tests/CMakeLists.txt

Runs with plain unittest (pytest collects it too). Exit 77 (ctest: skipped) when numpy or the module is
missing. Makes its own tiny emoji data (`braid data build emoji`), trains a tiny CLIP run through
braid.train, and compares the module with the CLI: `braid embed` vectors, `braid search` hits,
`braid eval` accuracy, `braid generate` answers.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed for", sys.executable, "(Debian: python3-numpy)")
    sys.exit(77)
try:
    import braid
except ImportError as e:
    print("SKIP: no module braid on PYTHONPATH (build the braid_python target; PYTHONPATH=build/python):", e)
    sys.exit(77)

EXE = os.environ.get("BRAID_EXE") or os.path.join(ROOT, "build", "apps", "braid", "braid")


def cli(*args, check=True):
    r = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"braid {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return r


def read_safetensors(path):
    """{name: array} of a safetensors file (the format: u64 header size, JSON header, raw data)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt[t["dtype"]]).reshape(t["shape"])
    return out


TINY_GENERATE = """
task: generate
threads: 1
data: {image: {size: 16}, text: {vocab: 80, view: en}, workers: 1}
model:
  name: mllm
  modalities: [image, text]
  tokens: 2
  projector: {name: linear}
  lm: {dim: 32, layers: 1, heads: 4, kv_heads: 2, hidden: 48, max_seq: 64}
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
  tasks:
    - {name: group, modality: image, prompt: "which group is this?", answer: label}
train: {max_steps: 3, batch_size: 8, lr: 0.01}
"""


class BraidModule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="braid_py_")
        cls.data = os.path.join(cls.tmp, "emoji")
        cli("data", "build", "emoji", "--out", cls.data, "--limit", "40")
        cls.manifest = os.path.join(cls.data, "manifest.jsonl")
        with open(cls.manifest, encoding="utf-8") as f:
            cls.rows = [json.loads(l) for l in f if l.strip()]
        cls.run_dir = os.path.join(cls.tmp, "clip")
        cls.records = []
        cls.result = braid.train(os.path.join(ROOT, "recipes", "emoji_clip.yaml"), cls.manifest, cls.run_dir,
                                 set={"data.text.vocab": 200, "data.workers": 1}, threads=1,
                                 train__max_steps=3, train__batch_size=16, progress=cls.records.append)
        cls.emb = os.path.join(cls.tmp, "E.safetensors")
        cli("embed", cls.run_dir, "--data", cls.manifest, "--split", "test", "--modality", "image", "--out", cls.emb,
            "--threads", "1")
        cls.index_dir = os.path.join(cls.tmp, "index")
        cli("index", "build", "--embeddings", cls.emb, "--out", cls.index_dir)
        cls.clip = braid.Run(cls.run_dir, threads=1)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_train_reports_progress(self):
        self.assertEqual(self.result["steps"], 3)
        self.assertEqual(self.result["run"], self.run_dir)
        steps = [r["step"] for r in self.records if "loss" in r and r.get("split", "train") == "train"]
        self.assertEqual(steps, [1, 2, 3], self.records)
        # the callback saw what the trainer logged
        with open(os.path.join(self.run_dir, "metrics.jsonl"), encoding="utf-8") as f:
            logged = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(self.records, logged)

    def test_info(self):
        self.assertEqual(self.clip.task, "align")
        self.assertEqual(self.clip.model, "dual_tower")
        self.assertEqual(self.clip.modalities, ["image", "text", "audio"])
        self.assertEqual(self.clip.recipe["train"]["max_steps"], 3)
        self.assertEqual(self.clip.recipe["data"]["text"]["vocab"], 200)
        self.assertIn("Smileys & Emotion", self.clip.classes)
        self.assertEqual(self.clip.info["embeds"], ["image", "text", "audio"])

    def test_embed_returns_numpy(self):
        paths = [os.path.join(self.data, r["image"]) for r in self.rows[:5]]
        v = self.clip.embed(images=paths)
        self.assertIsInstance(v, np.ndarray)
        self.assertEqual(v.dtype, np.float32)
        self.assertEqual(v.shape, (5, 128))
        self.assertFalse(v.flags.owndata)  # shares the result tensor's memory (capsule base)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        both = self.clip.embed(images=paths[:2], texts=["grinning face", "cat"])
        self.assertEqual(sorted(both), ["image", "text"])
        self.assertEqual(both["text"].shape, (2, 128))
        np.testing.assert_allclose(both["image"], v[:2], atol=1e-6)
        wav = os.path.join(self.data, self.rows[0]["audio"])
        self.assertEqual(self.clip.embed(audio=[wav]).shape, (1, 128))

    def test_embed_matches_cli(self):
        cli_vecs = read_safetensors(self.emb)["vectors"]
        with open(self.emb[: -len(".safetensors")] + ".json", encoding="utf-8") as f:
            entries = json.load(f)["entries"]
        paths = [e["path"] for e in entries]
        self.assertEqual(len(paths), cli_vecs.shape[0])
        v = self.clip.embed(images=paths)
        cos = (v * cli_vecs).sum(axis=1) / np.linalg.norm(v, axis=1) / np.linalg.norm(cli_vecs, axis=1)
        print(f"embed vs `braid embed`: {len(cos)} images, min cosine {cos.min():.7f}")
        self.assertGreaterEqual(cos.min(), 0.9999)
        # decoded pixels [N,H,W,3] uint8 give the vectors of the files
        px = self.clip.embed(images=np.stack([braid.load_image(p) for p in paths]))
        self.assertGreaterEqual(float((px * v).sum(axis=1).min()), 0.9999)

    def test_search(self):
        index = braid.Index(self.index_dir)
        vecs = read_safetensors(self.emb)["vectors"]
        hits = index.search(vecs[3], k=5)
        self.assertEqual(len(hits), 5)
        self.assertEqual(hits[0]["row"], int(read_safetensors(self.emb)["rows"][3]))
        self.assertAlmostEqual(hits[0]["score"], 1.0, places=4)
        scores = [h["score"] for h in hits]
        self.assertEqual(scores, sorted(scores, reverse=True))
        many = index.search(vecs[:4], k=2)
        self.assertEqual([len(h) for h in many], [2, 2, 2, 2])
        # a text query: the same hits as `braid search --json`
        q = "grinning face"
        got = index.search(text=q, k=5)
        want = json.loads(cli("search", self.run_dir, "--index", self.index_dir, "--text", q, "--k", "5",
                              "--json").stdout.strip().splitlines()[-1])["results"]
        self.assertEqual([h["id"] for h in got], [h["id"] for h in want])
        for g, w in zip(got, want):
            self.assertAlmostEqual(g["score"], w["score"], places=4)

    def test_errors_are_exceptions(self):
        with self.assertRaises(braid.Error) as e:
            braid.Run(os.path.join(self.tmp, "nowhere"))
        self.assertIn("nowhere", str(e.exception))
        self.assertIn("not a run directory", str(e.exception))
        self.assertIsInstance(e.exception, ValueError)
        self.assertIsInstance(e.exception, RuntimeError)
        missing = os.path.join(self.tmp, "missing.png")
        with self.assertRaisesRegex(braid.Error, "missing.png: no such image file"):
            self.clip.embed(images=[missing])
        bad = os.path.join(self.tmp, "bad.png")
        with open(bad, "wb") as f:
            f.write(b"not a png at all")
        with self.assertRaisesRegex(braid.Error, "bad.png"):
            self.clip.embed(images=[bad])
        with self.assertRaisesRegex(braid.Error, r"images\[0\]: expected a uint8 RGB image \[H,W,3\], got float64"):
            self.clip.embed(images=np.zeros((1, 8, 8, 3)))
        with self.assertRaisesRegex(braid.Error, "predict needs a classification"):
            self.clip.predict(texts=["x"])
        with self.assertRaisesRegex(braid.Error, "index holds dim 128 but the query has dim 3"):
            braid.Index(self.index_dir).search(np.ones(3, np.float32))
        with self.assertRaisesRegex(braid.Error, "no such index directory"):
            braid.Index(os.path.join(self.tmp, "noindex"))
        with self.assertRaisesRegex(braid.Error, "train.nosuchkey"):
            braid.train(os.path.join(ROOT, "recipes", "emoji_clip.yaml"), self.manifest,
                        os.path.join(self.tmp, "badrun"), train__nosuchkey=1)

    def test_predict_matches_eval(self):
        out = os.path.join(self.tmp, "fusion")
        braid.train(os.path.join(ROOT, "recipes", "emoji_late_fusion.yaml"), self.manifest, out, threads=1,
                    set={"train.max_steps": 4, "train.batch_size": 16, "data.workers": 1, "data.text.vocab": 200})
        run = braid.Run(out, threads=1)
        self.assertEqual(run.task, "classify")
        test = [r for r in self.rows if r["split"] == "test"]
        kw = {}
        for m in run.modalities:
            if m == "image":
                kw["images"] = [os.path.join(self.data, r["image"]) for r in test]
            elif m == "audio":
                kw["audio"] = [os.path.join(self.data, r["audio"]) for r in test]
            elif m == "text":
                view = run.recipe["data"]["text"].get("view", "en")
                kw["texts"] = [r["text"][view if view in r["text"] else "en"] for r in test]
        p = run.predict(**kw)
        probs = p["probabilities"]
        self.assertEqual(probs.shape, (len(test), len(run.classes)))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        self.assertEqual(p["labels"], [run.classes[i] for i in probs.argmax(axis=1)])
        acc = np.mean([l == r["label"] for l, r in zip(p["labels"], test)])
        ev = cli("eval", out, "--data", self.manifest, "--split", "test", "--threads", "1", "--json")
        want = json.loads(ev.stdout.strip().splitlines()[-1])
        print(f"predict accuracy {acc:.4f} vs `braid eval` {want['accuracy']:.4f} ({len(test)} test samples)")
        self.assertAlmostEqual(acc, want["accuracy"], places=6)

    def test_generate_matches_cli(self):
        out = os.path.join(self.tmp, "mllm")
        recipe = os.path.join(self.tmp, "tiny_generate.yaml")
        with open(recipe, "w", encoding="utf-8") as f:
            f.write(TINY_GENERATE)
        braid.train(recipe, self.manifest, out, threads=1)
        run = braid.Run(out, threads=1)
        self.assertEqual(run.task, "generate")
        img = os.path.join(self.data, self.rows[0]["image"])
        streamed = []
        a = run.generate(image=img, max_tokens=6, on_text=streamed.append)
        self.assertEqual(a["task"], "group")
        self.assertEqual("".join(streamed), a["text"])
        want = json.loads(cli("generate", out, "--image", img, "--max-tokens", "6", "--json").stdout.strip()
                          .splitlines()[-1])
        self.assertEqual(a["text"], want["text"])
        self.assertEqual(a["ids"], want["ids"])
        with self.assertRaisesRegex(braid.Error, "embed needs an align run"):
            run.embed(texts=["x"])

    def test_example_script(self):
        """docs/python.md's example is examples/python_search.py: it runs and prints what the doc shows."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(braid.__file__), env.get("PYTHONPATH")] if p)
        r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python_search.py"), self.run_dir,
                            self.manifest, self.index_dir], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        n = sum(1 for x in self.rows if x["split"] == "test")
        self.assertIn(f"embedded {n} images: float32 [{n}, 128]", lines)
        self.assertIn("paths vs pixels: min cosine 1.000000", lines)
        self.assertEqual(sum(1 for l in lines if l.startswith("  ")), 5)  # five text hits
        first = [x for x in self.rows if x["split"] == "test"][0]["id"]
        self.assertTrue(any(l.startswith(f"nearest to {first}: {first} (1.000)") for l in lines), r.stdout)
        # docs/python.md shows the script's code unchanged
        with open(os.path.join(ROOT, "examples", "python_search.py"), encoding="utf-8") as f:
            code = f.read()
        with open(os.path.join(ROOT, "docs", "python.md"), encoding="utf-8") as f:
            doc = f.read()
        self.assertIn("```python\n" + code[code.index("import json"):] + "```", doc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
