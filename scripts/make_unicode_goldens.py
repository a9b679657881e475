#!/usr/bin/python3
"""Golden reference fixtures for the Uni-Code objectives (tests/unicode_test.cpp, docs/unicode.md).

Run with Debian's python (python3-torch 1.13 + numpy; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 scripts/make_unicode_goldens.py

It rewrites tests/fixtures/unicode/*.safetensors from fixed seeds. Inputs are float32 values; every
reference is computed in float64 straight from the formulas of docs/unicode.md (loops, no C++ tricks:
CLUB's negative term is the explicit O(N^2) double mean, VQ distances are explicit norms, MM-EMA loops
over modalities one after the other).
  vq.safetensors     s.<m> [B,T,D], codebook, upstream grads g.<m>; expected index.<m>, st.<m>, commit,
                     grad.<m> = d(sum_m <st_m, g_m> + commitment)/d s_m   (two and three modalities: m2_, m3_)
  ema.safetensors    per case (m2_mean, m3_mean, m3_attention, m3_plain): initial embedding/ema_count/ema_sum,
                     inputs s.<step>.<m>, expected embedding/ema_count/ema_sum after 3 updates
  club.safetensors   module weights (mu1, mu2, logvar1, logvar2), x, y; expected estimate, loglik,
                     grad_x, grad_y of the estimate
  cpc.safetensors    info_nce pred/target/expected; cross-CPC weights (lstms.*, heads.*), s.<m>, expected loss
  cmcm.safetensors   s.<m>, codebook; expected loss and grad.<m>
"""
import math
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:
    sys.exit(f"make_unicode_goldens.py: {e}; run it with Debian's python: /usr/bin/python3 scripts/make_unicode_goldens.py")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_util import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "unicode")
D64 = torch.float64


def f32(t):
    """A float32-representable value, returned as float64 for the reference computation."""
    return t.float().double()


def nearest(x, e):
    # x [N, D], e [K, D]: argmin_k ||x - e_k||^2 (explicit differences)
    d = ((x[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    return d.argmin(1)


# ---------------------------------------------------------------- VQ + commitment
def vq_case(out, prefix, M, beta=0.25):
    g = torch.Generator().manual_seed(10 + M)
    B, T, D, K = 3, 4, 8, 6
    e = f32(torch.randn(K, D, generator=g, dtype=D64))
    s = [f32(torch.randn(B, T, D, generator=g, dtype=D64)).requires_grad_() for _ in range(M)]
    ups = [f32(torch.randn(B, T, D, generator=g, dtype=D64)) for _ in range(M)]
    out[prefix + "codebook"] = e.float()
    idx, st, q = [], [], []
    for m in range(M):
        i = nearest(s[m].detach().reshape(-1, D), e).reshape(B, T)
        qm = e[i]
        idx.append(i)
        q.append(qm)
        st.append(s[m] + (qm - s[m]).detach())
    commit = 0
    for a in range(M):
        for b in range(M):
            w = 2 * beta if a == b else beta / (M - 1)
            commit = commit + w * ((s[a] - q[b].detach()) ** 2).mean()
    total = commit + sum((st[m] * ups[m]).sum() for m in range(M))
    total.backward()
    for m in range(M):
        out[f"{prefix}s.{m}"] = s[m].detach().float()
        out[f"{prefix}g.{m}"] = ups[m].float()
        out[f"{prefix}index.{m}"] = idx[m].long()
        out[f"{prefix}st.{m}"] = st[m].detach()
        out[f"{prefix}grad.{m}"] = s[m].grad
    out[prefix + "commit"] = commit.detach().reshape(1)


# ---------------------------------------------------------------- EMA / MM-EMA
def ema_case(out, prefix, M, mm, teacher, gamma=0.99, eps=1e-5, steps=3):
    g = torch.Generator().manual_seed(100 + M + (7 if teacher == "attention" else 0) + (3 if not mm else 0))
    B, T, D, K = 3, 4, 5, 6
    e = f32(torch.randn(K, D, generator=g, dtype=D64))
    cnt = f32(torch.rand(K, generator=g, dtype=D64) + 0.5)
    sm = e * cnt[:, None]
    out[prefix + "embedding0"], out[prefix + "ema_count0"], out[prefix + "ema_sum0"] = e.float(), cnt.float(), sm.float()
    for step in range(steps):
        s = [f32(torch.randn(B, T, D, generator=g, dtype=D64) + 0.3 * m) for m in range(M)]
        for m in range(M):
            out[f"{prefix}s.{step}.{m}"] = s[m].float()
        # assignments of every modality from the codebook before this step
        idx = [nearest(s[m].reshape(-1, D), e) for m in range(M)]
        for a in range(M):
            if mm and M > 1:
                t = 0.5 * s[a].clone()
                for b in range(M):
                    if b == a:
                        continue
                    if teacher == "attention":
                        tb = torch.zeros_like(s[a])
                        for r in range(B):
                            att = torch.softmax(s[a][r] @ s[b][r].T / math.sqrt(D), dim=-1)
                            tb[r] = att @ s[b][r]
                    else:
                        tb = s[b]
                    t = t + 0.5 / (M - 1) * tb
            else:
                t = s[a]
            t = t.reshape(-1, D)
            n_k = torch.zeros(K, dtype=D64)
            dw = torch.zeros(K, D, dtype=D64)
            for r in range(t.shape[0]):
                n_k[idx[a][r]] += 1
                dw[idx[a][r]] += t[r]
            cnt = gamma * cnt + (1 - gamma) * n_k
            n = cnt.sum()
            smooth = (cnt + eps) / (n + K * eps) * n
            sm = gamma * sm + (1 - gamma) * dw
            e = sm / smooth[:, None]
    out[prefix + "embedding"], out[prefix + "ema_count"], out[prefix + "ema_sum"] = e, cnt, sm


# ---------------------------------------------------------------- CLUB
def club(out):
    g = torch.Generator().manual_seed(7)
    N, dx, dy, H = 7, 5, 4, 6
    W = {}
    for name, (i, o) in {"mu1": (dx, H), "mu2": (H, dy), "logvar1": (dx, H), "logvar2": (H, dy)}.items():
        W[name + ".weight"] = f32(torch.randn(o, i, generator=g, dtype=D64) * 0.5)
        W[name + ".bias"] = f32(torch.randn(o, generator=g, dtype=D64) * 0.1)
    x = f32(torch.randn(N, dx, generator=g, dtype=D64)).requires_grad_()
    y = f32(torch.randn(N, dy, generator=g, dtype=D64)).requires_grad_()

    def lin(name, v):
        return v @ W[name + ".weight"].T + W[name + ".bias"]

    mu = lin("mu2", torch.relu(lin("mu1", x)))
    lv = torch.tanh(lin("logvar2", torch.relu(lin("logvar1", x))))
    pos = (-(mu - y) ** 2 / 2 / lv.exp()).sum(1).mean()
    neg = 0
    for i in range(N):
        for j in range(N):
            neg = neg + (-(mu[i] - y[j]) ** 2 / 2 / lv[i].exp()).sum()
    neg = neg / (N * N)
    est = pos - neg
    est.backward(retain_graph=True)
    loglik = (-(mu - y) ** 2 / lv.exp() - lv).sum(1).mean()
    for k, v in W.items():
        out[k] = v.float()
    out["x"], out["y"] = x.detach().float(), y.detach().float()
    out["estimate"] = est.detach().reshape(1)
    out["loglik"] = loglik.detach().reshape(1)
    out["grad_x"], out["grad_y"] = x.grad, y.grad


# ---------------------------------------------------------------- InfoNCE / Cross-CPC
def info_nce(pred, target):
    N = pred.shape[0]
    total = 0
    for i in range(N):
        logits = torch.stack([pred[i] @ target[j] for j in range(N)])
        total = total - (logits[i] - torch.logsumexp(logits, 0))
    return total / N


def lstm_ref(x, Wih, Whh, bih, bhh):
    # x [B, T, D]; PyTorch gate order i, f, g, o
    B, T, _ = x.shape
    H = Whh.shape[1]
    h = torch.zeros(B, H, dtype=D64)
    c = torch.zeros(B, H, dtype=D64)
    outs = []
    for t in range(T):
        z = x[:, t] @ Wih.T + bih + h @ Whh.T + bhh
        i, f, gg, o = z.split(H, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1)


def cpc(out):
    g = torch.Generator().manual_seed(3)
    p = f32(torch.randn(5, 4, generator=g, dtype=D64))
    t = f32(torch.randn(5, 4, generator=g, dtype=D64))
    out["nce.pred"], out["nce.target"], out["nce.expected"] = p.float(), t.float(), info_nce(p, t).reshape(1)
    M, B, T, D, H, K = 3, 4, 5, 6, 7, 2
    cross_w, self_w = 1.0, 0.1
    Wt = {}
    for m in range(M):
        Wt[f"lstms.{m}.weight_ih_l0"] = f32(torch.randn(4 * H, D, generator=g, dtype=D64) * 0.3)
        Wt[f"lstms.{m}.weight_hh_l0"] = f32(torch.randn(4 * H, H, generator=g, dtype=D64) * 0.3)
        Wt[f"lstms.{m}.bias_ih_l0"] = f32(torch.randn(4 * H, generator=g, dtype=D64) * 0.1)
        Wt[f"lstms.{m}.bias_hh_l0"] = f32(torch.randn(4 * H, generator=g, dtype=D64) * 0.1)
        for k in range(K):
            Wt[f"heads.{m * K + k}.weight"] = f32(torch.randn(D, H, generator=g, dtype=D64) * 0.3)
    s = [f32(torch.randn(B, T, D, generator=g, dtype=D64)) for _ in range(M)]
    loss = 0
    for a in range(M):
        c = lstm_ref(s[a], Wt[f"lstms.{a}.weight_ih_l0"], Wt[f"lstms.{a}.weight_hh_l0"], Wt[f"lstms.{a}.bias_ih_l0"],
                     Wt[f"lstms.{a}.bias_hh_l0"])
        for b in range(M):
            w = self_w if a == b else cross_w
            terms = []
            for k in range(1, K + 1):
                pred = c @ Wt[f"heads.{a * K + k - 1}.weight"].T
                for tt in range(T - k):
                    terms.append(info_nce(pred[:, tt], s[b][:, tt + k]))
            loss = loss + w * sum(terms) / len(terms)
    for k, v in Wt.items():
        out["cpc." + k] = v.float()
    for m in range(M):
        out[f"cpc.s.{m}"] = s[m].float()
    out["cpc.expected"] = loss.reshape(1)


# ---------------------------------------------------------------- L_cmcm
def cmcm(out):
    g = torch.Generator().manual_seed(5)
    M, B, T, D, K = 3, 4, 3, 5, 6
    e = f32(torch.randn(K, D, generator=g, dtype=D64))
    s = [f32(torch.randn(B, T, D, generator=g, dtype=D64)).requires_grad_() for _ in range(M)]
    P = []
    for m in range(M):
        rows = []
        for i in range(B):
            acc = torch.zeros(K, dtype=D64)
            for t in range(T):
                dist = torch.stack([torch.sqrt(((s[m][i, t] - e[k]) ** 2).sum()) for k in range(K)])
                acc = acc + torch.softmax(-dist, 0)
            rows.append(acc / T)
        P.append(torch.stack(rows))
    loss = 0
    for a in range(M):
        for b in range(a + 1, M):
            S = torch.zeros(B, B, dtype=D64)
            S = torch.stack([torch.stack([(P[a][i] * P[b][j].log()).sum() + (P[b][i] * P[a][j].log()).sum()
                                          for j in range(B)]) for i in range(B)])
            mx = S.max(1, keepdim=True).values
            lse = (S - mx).exp().sum(1).log() + mx[:, 0]
            loss = loss + (lse - S.diagonal()).mean()
    loss = 0.5 * loss
    loss.backward()
    out["codebook"] = e.float()
    for m in range(M):
        out[f"s.{m}"] = s[m].detach().float()
        out[f"grad.{m}"] = s[m].grad
    out["expected"] = loss.detach().reshape(1)


def main():
    os.makedirs(OUT, exist_ok=True)
    vq = {}
    vq_case(vq, "m2_", 2)
    vq_case(vq, "m3_", 3)
    save_file(vq, os.path.join(OUT, "vq.safetensors"))
    ema = {}
    ema_case(ema, "m2_mean_", 2, True, "mean")
    ema_case(ema, "m3_mean_", 3, True, "mean")
    ema_case(ema, "m3_attention_", 3, True, "attention")
    ema_case(ema, "m3_plain_", 3, False, "mean")
    save_file(ema, os.path.join(OUT, "ema.safetensors"))
    c = {}
    club(c)
    save_file(c, os.path.join(OUT, "club.safetensors"))
    p = {}
    cpc(p)
    save_file(p, os.path.join(OUT, "cpc.safetensors"))
    m = {}
    cmcm(m)
    save_file(m, os.path.join(OUT, "cmcm.safetensors"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)), "bytes")


if __name__ == "__main__":
    main()
