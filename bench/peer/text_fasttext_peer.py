# The PyTorch reference for the quickstart's from-scratch text row (issue 20, docs/results/quality.md):
# a fastText-style classifier (mean of hashed word / character n-gram embeddings, one linear layer, token
# dropout, AdamW one-cycle) on a braid emoji manifest, seeds given, test accuracy per seed and mean ± std.
# Runs under Debian's python3-torch:
#   /usr/bin/python3 bench/peer/text_fasttext_peer.py --feats wc --seeds 0,1,2 --buckets 20000
# --feats: w words, c character n-grams of each word, z zh characters, b word bigrams.
# braid's differences, one at a time (docs/results/quality.md): --encmlp 128 puts text_bow's default MLP
# (Linear-ReLU-Linear) between the mean and the head; --init uniform draws the rows from U(-1/d, 1/d)
# (fastText's) instead of torch's N(0, 1); --sched braid is braid's schedule (20 linear warm-up steps, then
# cosine to 0) instead of one-cycle; --best keeps the weights of the best validation epoch, as braid does.
import json, sys, zlib, random, argparse, math, copy
import torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument('--manifest', default='data/emoji/manifest.jsonl')
ap.add_argument('--feats', default='w')   # w words, c char ngrams, z zh chars, b word bigrams
ap.add_argument('--nmin', type=int, default=3); ap.add_argument('--nmax', type=int, default=5)
ap.add_argument('--buckets', type=int, default=1<<18)
ap.add_argument('--embed', type=int, default=128)
ap.add_argument('--hidden', type=int, default=0)
ap.add_argument('--lr', type=float, default=1e-2); ap.add_argument('--wd', type=float, default=0.0)
ap.add_argument('--epochs', type=int, default=20); ap.add_argument('--tdrop', type=float, default=0.15)
ap.add_argument('--ls', type=float, default=0.0); ap.add_argument('--pool', default='mean')
ap.add_argument('--seeds', default='0,1,2'); ap.add_argument('--view', default='en')
ap.add_argument('--dropout', type=float, default=0.0); ap.add_argument('--bs', type=int, default=64)
ap.add_argument('--sched', default='onecycle', choices=['onecycle', 'braid']); ap.add_argument('--best', action='store_true')
ap.add_argument('--encmlp', type=int, default=0); ap.add_argument('--init', default='normal', choices=['normal', 'uniform'])
a = ap.parse_args()
rows = json.load(open(a.manifest)) if a.manifest.endswith('.json') else [json.loads(l) for l in open(a.manifest)]
def words(s):
    out, cur = [], ''
    for ch in s.lower() + ' ':
        if ch.isalnum() and ord(ch) < 128: cur += ch
        else:
            if cur: out.append(cur)
            cur = ''
    return out
def feats(r):
    t = r['text']; f = []
    en = t.get(a.view, '')
    ws = words(en)
    ids = r.get('ids', [])
    if 'p' in a.feats: f += ['p:%d' % i for i in ids]
    if 'q' in a.feats: f += ['p:%d' % i for i in ids if r['pieces'][ids.index(i)] not in (',', '▁')]
    if 'P' in a.feats: f += ['P:%d_%d' % (x, y) for x, y in zip(ids, ids[1:])]
    if 'w' in a.feats: f += ['w:' + w for w in ws]
    if 'b' in a.feats: f += ['b:' + x + '_' + y for x, y in zip(ws, ws[1:])]
    if 'c' in a.feats:
        for w in ws:
            ww = '<' + w + '>'
            for n in range(a.nmin, a.nmax + 1):
                for i in range(len(ww) - n + 1):
                    g = ww[i:i+n]
                    if g != ww: f.append('c:' + g)
    if 'z' in a.feats:
        zh = t.get('zh', '')
        f += ['z:' + c for c in zh]
        if 'Z' in a.feats: f += ['Z:' + x + y for x, y in zip(zh, zh[1:])]
    return [zlib.crc32(x.encode()) % a.buckets + 1 for x in f] or [0]
classes = sorted({r['label'] for r in rows})
cid = {c: i for i, c in enumerate(classes)}
def split(s):
    X = [feats(r) for r in rows if r['split'] == s]; y = [cid[r['label']] for r in rows if r['split'] == s]
    return X, torch.tensor(y)
Xtr, ytr = split('train'); Xva, yva = split('val'); Xte, yte = split('test')
def pad(X):
    L = max(len(x) for x in X); t = torch.zeros(len(X), L, dtype=torch.long)
    for i, x in enumerate(X): t[i, :len(x)] = torch.tensor(x)
    return t
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.e = nn.Embedding(a.buckets + 1, a.embed, padding_idx=0)
        if a.init == 'uniform':
            nn.init.uniform_(s.e.weight, -1.0 / a.embed, 1.0 / a.embed)
            with torch.no_grad(): s.e.weight[0].zero_()
        s.mlp = nn.Sequential(nn.Linear(a.embed, a.encmlp), nn.ReLU(), nn.Linear(a.encmlp, a.encmlp)) if a.encmlp else nn.Identity()
        d = a.encmlp or a.embed
        s.h = nn.Sequential(nn.Linear(d, a.hidden), nn.ReLU(), nn.Dropout(a.dropout)) if a.hidden else nn.Dropout(a.dropout)
        s.o = nn.Linear(a.hidden or d, len(classes))
    def forward(s, ids):
        m = (ids > 0).float()
        if s.training and a.tdrop > 0:
            k = m * (torch.rand_like(m) >= a.tdrop).float()
            m = torch.where(k.sum(1, keepdim=True) > 0, k, m)
        x = (s.e(ids) * m.unsqueeze(2)).sum(1)
        if a.pool == 'mean': x = x / m.sum(1, keepdim=True).clamp_min(1)
        elif a.pool == 'sqrt': x = x / m.sum(1, keepdim=True).clamp_min(1).sqrt()
        return s.o(s.h(s.mlp(x)))
res = []
for seed in [int(x) for x in a.seeds.split(',')]:
    torch.manual_seed(seed); random.seed(seed)
    m = M(); opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=a.wd)
    n = len(Xtr); steps = a.epochs * ((n + a.bs - 1) // a.bs)
    if a.sched == 'onecycle':
        sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.05, anneal_strategy='cos')
    else:
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (k + 1) / 20 if k < 20 else 0.5 * (1 + math.cos(math.pi * min(1.0, (k - 20) / max(1, steps - 20)))))
    best_va, best_state = -1.0, None
    for ep in range(a.epochs):
        m.train(); perm = torch.randperm(n)
        for i in range(0, n, a.bs):
            idx = perm[i:i+a.bs]
            loss = F.cross_entropy(m(pad([Xtr[j] for j in idx])), ytr[idx], label_smoothing=a.ls)
            opt.zero_grad(); loss.backward(); opt.step(); sch.step()
        if a.best:
            m.eval()
            with torch.no_grad(): va = (m(pad(Xva)).argmax(1) == yva).float().mean().item()
            if va > best_va: best_va, best_state = va, copy.deepcopy(m.state_dict())
    if a.best: m.load_state_dict(best_state)
    m.eval()
    with torch.no_grad():
        va = (m(pad(Xva)).argmax(1) == yva).float().mean().item(); te = (m(pad(Xte)).argmax(1) == yte).float().mean().item()
    res.append((va, te))
import statistics as st
tes = [r[1] for r in res]
print(' '.join(sys.argv[1:]), '| val', ' '.join('%.3f' % r[0] for r in res), '| test', ' '.join('%.3f' % t for t in tes), '| mean %.3f ± %.3f' % (st.mean(tes), st.pstdev(tes)), flush=True)
