#!/usr/bin/python3
"""Golden reference fixtures for the alignment objectives (tests/alignment_objectives_test.cpp, docs/alignment.md).

Run with Debian's python (python3-torch 1.13 + python3-numpy; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_alignment_goldens.py

It rewrites tests/fixtures/alignment/ from fixed seeds; running it again gives byte-identical files.
Inputs are float32 (what the C++ code gets); references are computed in float64 from the formulas
of docs/alignment.md, written independently of the C++ code (torch.nn.functional's cross_entropy
with label_smoothing / ignore_index, explicit loops for DeViSE, numpy for CCA). Scalars are stored
with shape [1]. Files:

  clip.safetensors     u, v [8, 6] (rows L2-normalized); cases C in {base, smooth, clamped}:
                       C.t (logit scale), C.eps (label smoothing), C.loss, C.du, C.dv, C.dt
  siglip.safetensors   u, v [8, 6]; cases C in {init, other}: C.t, C.b, C.loss, C.du, C.dv, C.dt, C.db
  cca.safetensors      X [200, 5], Y [200, 4] (3 shared latent factors + noise), k = 3, r = 1e-4:
                       mean_x, mean_y, A [5, 3], B [4, 3], corr [3], px = (X − mean_x) A, py likewise
  dcca.safetensors     X [32, 4], Y [32, 3], r = 1e-3; for k in {0, 2}: k<k>.loss, k<k>.dX, k<k>.dY
  devise.safetensors   scores [6, 5], labels [6], margin 0.2: loss, dscores
  cycle.safetensors    a [4, 3], b [4, 5], a2b, b2a, a2b2a, b2a2b: loss
  mlm.safetensors      logits [3, 7, 11], targets [3, 7] (−100 = ignored): loss, dlogits
  itm.safetensors      logits [6, 2], is_match [6]: loss; sim [5, 5]: probs (softmax with the diagonal excluded)
"""
import math
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # e.g. the pyenv python3 on PATH
    sys.exit(f"make_alignment_goldens.py: {e}; run it with Debian's python: /usr/bin/python3 "
             "scripts/make_alignment_goldens.py")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "alignment")
MAX_BYTES = 100 * 1024


def f32(x):
    return x.float().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float32)


def f64(x):
    return x.detach().double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)


def scalar(x):
    return np.asarray([float(x)], dtype=np.float64)


def unit_rows(gen, b, d):
    x = torch.randn(b, d, generator=gen, dtype=torch.float64)
    return (x / x.norm(dim=1, keepdim=True)).float()


def clip():
    gen = torch.Generator().manual_seed(1)
    u, v = unit_rows(gen, 8, 6), unit_rows(gen, 8, 6)
    out = {"u": f32(u), "v": f32(v)}
    for name, t, eps in [("base", math.log(1 / 0.07), 0.0), ("smooth", math.log(1 / 0.07), 0.1),
                         ("clamped", 5.0, 0.1)]:
        uu = u.double().requires_grad_()
        vv = v.double().requires_grad_()
        tt = torch.tensor(float(np.float32(t)), dtype=torch.float64, requires_grad=True)
        scale = torch.clamp(tt.exp(), max=100.0)
        logits = scale * uu @ vv.T
        target = torch.arange(8)
        loss = 0.5 * (F.cross_entropy(logits, target, label_smoothing=eps) +
                      F.cross_entropy(logits.T, target, label_smoothing=eps))
        loss.backward()
        out.update({f"{name}.t": np.asarray([t], dtype=np.float32), f"{name}.eps": scalar(eps),
                    f"{name}.loss": scalar(loss.item()), f"{name}.du": f64(uu.grad), f"{name}.dv": f64(vv.grad),
                    f"{name}.dt": scalar(tt.grad.item())})
    assert out["clamped.dt"][0] == 0.0  # exp(5) > 100: the clamp stops the gradient
    return out


def siglip():
    gen = torch.Generator().manual_seed(2)
    u, v = unit_rows(gen, 8, 6), unit_rows(gen, 8, 6)
    out = {"u": f32(u), "v": f32(v)}
    for name, t, b in [("init", math.log(10.0), -10.0), ("other", 1.3, -1.5)]:
        uu = u.double().requires_grad_()
        vv = v.double().requires_grad_()
        tt = torch.tensor(float(np.float32(t)), dtype=torch.float64, requires_grad=True)
        bb = torch.tensor(float(np.float32(b)), dtype=torch.float64, requires_grad=True)
        loss = 0.0
        for i in range(8):  # the sum over pairs, one term at a time
            for j in range(8):
                z = 1.0 if i == j else -1.0
                loss = loss - F.logsigmoid(z * (tt.exp() * (uu[i] * vv[j]).sum() + bb))
        loss = loss / 8
        loss.backward()
        out.update({f"{name}.t": np.asarray([t], dtype=np.float32), f"{name}.b": np.asarray([b], dtype=np.float32),
                    f"{name}.loss": scalar(loss.item()), f"{name}.du": f64(uu.grad), f"{name}.dv": f64(vv.grad),
                    f"{name}.dt": scalar(tt.grad.item()), f"{name}.db": scalar(bb.grad.item())})
    return out


def inv_sqrt(c):
    w, q = np.linalg.eigh(c)
    return (q / np.sqrt(w)) @ q.T


def cca():
    rng = np.random.default_rng(3)
    n, k, r = 200, 3, 1e-4
    z = rng.standard_normal((n, 3))
    X = (z @ rng.standard_normal((3, 5)) + 0.7 * rng.standard_normal((n, 5)) + 2.0).astype(np.float32)
    Y = (z @ rng.standard_normal((3, 4)) + 0.9 * rng.standard_normal((n, 4)) - 1.0).astype(np.float32)
    x, y = X.astype(np.float64), Y.astype(np.float64)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    cxx = xc.T @ xc / (n - 1) + r * np.eye(5)
    cyy = yc.T @ yc / (n - 1) + r * np.eye(4)
    cxy = xc.T @ yc / (n - 1)
    T = inv_sqrt(cxx) @ cxy @ inv_sqrt(cyy)
    U, S, Vt = np.linalg.svd(T)
    A, B = inv_sqrt(cxx) @ U[:, :k], inv_sqrt(cyy) @ Vt[:k].T
    # Cross-check by a second route: ρ² are the eigenvalues of C_xx⁻¹ C_xy C_yy⁻¹ C_yx.
    rho2 = np.sort(np.linalg.eigvals(np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)).real)[::-1]
    assert np.allclose(np.sqrt(rho2[:k]), S[:k], atol=1e-10), (rho2, S)
    px, py = xc @ A, yc @ B
    emp = [np.corrcoef(px[:, i], py[:, i])[0, 1] for i in range(k)]
    assert np.allclose(emp, S[:k], atol=1e-3), (emp, S)
    return {"X": X, "Y": Y, "mean_x": mx, "mean_y": my, "A": A, "B": B, "corr": S[:k], "px": px, "py": py}


def dcca():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    X = (z @ torch.randn(2, 4, generator=gen, dtype=torch.float64) +
         0.5 * torch.randn(32, 4, generator=gen, dtype=torch.float64)).float()
    Y = (z @ torch.randn(2, 3, generator=gen, dtype=torch.float64) +
         0.5 * torch.randn(32, 3, generator=gen, dtype=torch.float64)).float()
    out = {"X": f32(X), "Y": f32(Y)}
    r = 1e-3
    for k in (0, 2):
        x = X.double().requires_grad_()
        y = Y.double().requires_grad_()
        n = x.shape[0]
        xc, yc = x - x.mean(0), y - y.mean(0)
        cxx = xc.T @ xc / (n - 1) + r * torch.eye(4, dtype=torch.float64)
        cyy = yc.T @ yc / (n - 1) + r * torch.eye(3, dtype=torch.float64)
        cxy = xc.T @ yc / (n - 1)

        def isq(c):
            w, q = torch.linalg.eigh(c)
            return q @ torch.diag(w.rsqrt()) @ q.T
        T = isq(cxx) @ cxy @ isq(cyy)
        s = torch.linalg.svdvals(T)
        loss = -(s[:k].sum() if k else s.sum())
        loss.backward()
        # value cross-check with numpy
        s_np = np.linalg.svd(inv_sqrt(f64(cxx)) @ f64(cxy) @ inv_sqrt(f64(cyy)), compute_uv=False)
        assert abs(-(s_np[:k].sum() if k else s_np.sum()) - loss.item()) < 1e-10
        out.update({f"k{k}.loss": scalar(loss.item()), f"k{k}.dX": f64(x.grad), f"k{k}.dY": f64(y.grad)})
    return out


def devise():
    gen = torch.Generator().manual_seed(5)
    scores = (0.3 * torch.randn(6, 5, generator=gen, dtype=torch.float64)).float()
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    margin = 0.2
    s = scores.double().requires_grad_()
    loss = 0.0
    for i in range(6):
        for j in range(5):
            if j != labels[i]:
                loss = loss + torch.clamp(margin - s[i, labels[i]] + s[i, j], min=0)
    loss = loss / 6
    loss.backward()
    return {"scores": f32(scores), "labels": labels.numpy().astype(np.int64), "margin": scalar(margin),
            "loss": scalar(loss.item()), "dscores": f64(s.grad)}


def cycle():
    gen = torch.Generator().manual_seed(6)
    t = {k: torch.randn(*shape, generator=gen, dtype=torch.float64).float() for k, shape in
         [("a", (4, 3)), ("b", (4, 5)), ("a2b", (4, 5)), ("b2a", (4, 3)), ("a2b2a", (4, 3)), ("b2a2b", (4, 5))]}
    d = {k: v.double() for k, v in t.items()}
    loss = sum(((x - y) ** 2).mean() for x, y in [(d["a2b"], d["b"]), (d["a2b2a"], d["a"]), (d["b2a"], d["a"]),
                                                   (d["b2a2b"], d["b"])])
    out = {k: f32(v) for k, v in t.items()}
    out["loss"] = scalar(loss.item())
    return out


def mlm():
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 7, 11, generator=gen, dtype=torch.float64).float()
    targets = torch.randint(0, 11, (3, 7), generator=gen)
    keep = torch.rand(3, 7, generator=gen) < 0.3
    targets[~keep] = -100
    lg = logits.double().requires_grad_()
    loss = F.cross_entropy(lg.reshape(-1, 11), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    return {"logits": f32(logits), "targets": targets.numpy().astype(np.int64), "loss": scalar(loss.item()),
            "dlogits": f64(lg.grad)}


def itm():
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(6, 2, generator=gen, dtype=torch.float64).float()
    is_match = torch.tensor([1, 0, 0, 1, 0, 0])
    loss = F.cross_entropy(logits.double(), is_match)
    sim = (1.5 * torch.randn(5, 5, generator=gen, dtype=torch.float64)).float()
    probs = np.zeros((5, 5))
    for i in range(5):  # softmax over j != i, written out
        e = [0.0 if j == i else math.exp(float(sim[i, j])) for j in range(5)]
        probs[i] = np.asarray(e) / sum(e)
    return {"logits": f32(logits), "is_match": is_match.numpy().astype(np.int64), "loss": scalar(loss.item()),
            "sim": f32(sim), "probs": probs}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, fn in [("clip", clip), ("siglip", siglip), ("cca", cca), ("dcca", dcca), ("devise", devise),
                     ("cycle", cycle), ("mlm", mlm), ("itm", itm)]:
        path = os.path.join(OUT, f"{name}.safetensors")
        save_file(fn(), path)
        assert os.path.getsize(path) < MAX_BYTES, (path, os.path.getsize(path))
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
