// The multimodal LM (issue 15): the chat template against a real tokenizer, the answer-only loss, parity of
// the training forward and generation, cached vs uncached decoding, seeded sampling, the text metrics, and
// train -> generate -> eval through the CLI.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/data/tokenizer.h"
#include "braid/eval/generation.h"
#include "braid/models/mllm.h"
#include "braid/run/chat.h"
#include "mllm_fixture.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;

namespace {

const char* kTasks = R"(
name: mllm
tokens: 3
projector: {name: mlp, hidden: 16}
lm: {dim: 32, layers: 2, heads: 4, kv_heads: 2, hidden: 48, max_seq: 64}
encoders:
  image: {name: image_cnn, channels: [4], dim: 8}
tasks:
  - {name: name, modality: image, prompt: "what is shown?", answer: text}
  - {name: group, modality: image, prompt: "which group is this?", answer: label}
)";

std::vector<std::string> corpus() {
  std::vector<std::string> c;
  for (int i = 0; i < 20; ++i)
    for (const char* s : {"grinning face", "smiling face with heart eyes", "red heart", "flag: france",
                          "what is shown?", "which group is this?", "smileys & emotion", "animals & nature",
                          "a dog and a cat", "green apple"})
      c.push_back(s);
  return c;
}

std::string make_tokenizer(const TempDir& d, bool specials) {
  const std::string p = d.file(specials ? "chat.model" : "plain.model");
  data::Tokenizer::train(corpus(), 120, p, specials ? nn::lm::chat_pieces() : std::vector<std::string>{});
  return p;
}

std::vector<int64_t> ids_of(const data::Tokenizer& t, const std::string& s) {
  auto v = t.encode(s);
  return {v.begin(), v.end()};
}

struct Tiny {
  TempDir dir{"mllm"};
  data::Tokenizer tok = data::Tokenizer::load(make_tokenizer(dir, true));
  Config cfg = Config::from_string(kTasks, "tiny.yaml");
  nn::lm::ChatSpec spec = run::chat_spec(tok, cfg);
  std::shared_ptr<models::MLLMImpl> model;
  std::vector<std::string> answers{"grinning face", "red heart", "smiling face with heart eyes"};
  std::vector<std::string> classes{"smileys & emotion", "animals & nature"};

  Tiny() {
    torch::manual_seed(0);
    models::ModelContext ctx;
    ctx.task = models::Task::Generate;
    ctx.modalities = {"image", "text"};
    ctx.encoders["image"].modality = "image";
    ctx.encoders["image"].image_size = 16;
    ctx.encoders["text"].modality = "text";
    ctx.encoders["text"].vocab_size = tok.vocab_size();
    ctx.chat = spec;
    auto ct = padded(classes);
    ctx.class_text = ct.first;
    ctx.class_text_lengths = ct.second;
    model = std::make_shared<models::MLLMImpl>(cfg, ctx);
    model->eval();
  }
  std::pair<torch::Tensor, torch::Tensor> padded(const std::vector<std::string>& texts) const {
    int64_t L = 0;
    for (const auto& t : texts) L = std::max<int64_t>(L, static_cast<int64_t>(tok.encode(t).size()));
    auto data = torch::zeros({static_cast<int64_t>(texts.size()), L}, torch::kLong);
    auto len = torch::zeros({static_cast<int64_t>(texts.size())}, torch::kLong);
    for (size_t i = 0; i < texts.size(); ++i) {
      auto v = ids_of(tok, texts[i]);
      for (size_t j = 0; j < v.size(); ++j) data[i][j] = v[j];
      len[i] = static_cast<int64_t>(v.size());
    }
    return {data, len};
  }
  // Ask task 0 ("what is shown?") about the batch's images for exactly `n` tokens (no stop token).
  models::ModelImpl::GenerateRequest ask(int64_t n) const {
    models::ModelImpl::GenerateRequest req;
    req.modality = "image";
    req.prompt_ids = spec.tasks[0].prompt_ids;
    req.options.max_tokens = n;
    req.options.stop_tokens = {-5};
    return req;
  }
  Batch batch() const {
    Batch b;
    const int64_t B = static_cast<int64_t>(answers.size());
    for (int64_t i = 0; i < B; ++i) b.index.push_back(i);
    torch::manual_seed(1);
    b.mods["image"] = {torch::randn({B, 3, 16, 16}), torch::ones({B}, torch::kLong), torch::ones({B}, torch::kBool)};
    auto t = padded(answers);
    b.mods["text"] = {t.first, t.second, torch::ones({B}, torch::kBool)};
    b.labels = torch::tensor(std::vector<int64_t>{0, 0, 1});
    return b;
  }
};

}  // namespace

TEST(ChatTemplate, ChatTokensAreSinglePiecesOfTheTokenizer) {
  TempDir d("chat");
  auto tok = data::Tokenizer::load(make_tokenizer(d, true));
  auto spec = run::chat_spec(tok, Config::from_string(kTasks, "t.yaml"));
  std::set<int64_t> ids{spec.user, spec.assistant, spec.slots.at("image"), spec.slots.at("audio"), spec.bos, spec.eos,
                        spec.pad};
  EXPECT_EQ(ids.size(), 7u) << "chat ids must be distinct";
  EXPECT_EQ(tok.encode("face<|assistant|>").back(), static_cast<int>(spec.assistant));
  ASSERT_EQ(spec.tasks.size(), 2u);
  EXPECT_EQ(spec.tasks[0].prompt_ids, ids_of(tok, "what is shown?"));
  EXPECT_EQ(tok.decode(std::vector<int>(spec.tasks[1].prompt_ids.begin(), spec.tasks[1].prompt_ids.end())),
            "which group is this?");
  // a tokenizer trained without the chat pieces splits "<|user|>": the run refuses it, naming the file
  const std::string plain = make_tokenizer(d, false);
  auto ptok = data::Tokenizer::load(plain);
  ExpectInputError([&] { run::chat_spec(ptok, Config::from_string(kTasks, "t.yaml")); }, plain, "<|user|>");
  // a bad task names its key
  ExpectInputError([&] { run::chat_spec(tok, Config::from_string("tasks: [{modality: video}]", "t.yaml")); }, "t.yaml",
                   "tasks[0]");
}

TEST(ChatTemplate, MaskCoversExactlyTheAnswerAndEos) {
  TempDir d("chat");
  auto tok = data::Tokenizer::load(make_tokenizer(d, true));
  auto spec = run::chat_spec(tok, Config::from_string(kTasks, "t.yaml"));
  const auto answer = ids_of(tok, "smiling face with heart eyes");
  const auto& task = spec.tasks[0];
  auto e = nn::lm::render_chat(spec, "image", 3, task.prompt_ids, &answer);
  ASSERT_EQ(e.ids.size(), e.target.size());
  // layout: <bos> <|user|> <image>x3 prompt <|assistant|> answer <eos>
  const size_t prefix = 2 + 3 + task.prompt_ids.size() + 1;
  ASSERT_EQ(e.ids.size(), prefix + answer.size() + 1);
  EXPECT_EQ(e.ids[0], spec.bos);
  EXPECT_EQ(e.ids[1], spec.user);
  EXPECT_EQ(e.slot_start, 2);
  EXPECT_EQ(e.slot_count, 3);
  for (int i = 2; i < 5; ++i) EXPECT_EQ(e.ids[i], spec.slots.at("image"));
  EXPECT_EQ(e.ids[prefix - 1], spec.assistant);
  EXPECT_EQ(e.ids.back(), spec.eos);
  std::vector<int> targets, rest;
  for (size_t i = 0; i < e.ids.size(); ++i) (e.target[i] ? targets : rest).push_back(static_cast<int>(e.ids[i]));
  EXPECT_EQ(targets.size(), answer.size() + 1);
  EXPECT_EQ(targets.back(), spec.eos);
  EXPECT_EQ(tok.decode(targets), "smiling face with heart eyes");  // the targets are the answer, nothing else
  for (size_t i = 0; i < prefix; ++i) EXPECT_EQ(e.target[i], 0) << "prompt position " << i << " is a target";
  // the prompt part alone ends at <|assistant|>: what generation continues
  auto p = nn::lm::render_chat(spec, "image", 3, task.prompt_ids, nullptr);
  EXPECT_EQ(p.ids, std::vector<int64_t>(e.ids.begin(), e.ids.begin() + prefix));
}

TEST(MLLM, LossReadsOnlyTheAnswerTokens) {
  Tiny t;
  auto b = t.batch();
  for (size_t k = 0; k < t.spec.tasks.size(); ++k) {
    const auto& task = t.spec.tasks[k];
    auto f = t.model->task_forward(b, task);
    ASSERT_TRUE(f.logits.defined());
    ASSERT_EQ(f.rows.size(0), 3);
    // the loss by hand: next-token cross-entropy at the answer + <eos> positions, found from the layout
    const int64_t prefix = 2 + 3 + static_cast<int64_t>(task.prompt_ids.size()) + 1;
    double sum = 0;
    int64_t count = 0;
    for (int64_t r = 0; r < 3; ++r) {
      const std::string ans = task.answer == "label" ? t.classes[b.labels[r].item<int64_t>()] : t.answers[r];
      auto want = ids_of(t.tok, ans);
      want.push_back(t.spec.eos);
      for (size_t j = 0; j < want.size(); ++j) {
        const int64_t pos = prefix + static_cast<int64_t>(j);
        ASSERT_EQ(f.ids[r][pos].item<int64_t>(), want[j]) << task.name << " row " << r;
        auto lp = torch::log_softmax(f.logits[r][pos - 1], -1);
        sum -= lp[want[j]].item<double>();
        ++count;
      }
    }
    EXPECT_NEAR(models::MLLMImpl::answer_loss(f).item<double>(), sum / count, 1e-5) << task.name;
  }
}

TEST(MLLM, TrainingForwardAndGenerationPromptGiveTheSameLogits) {
  Tiny t;
  auto b = t.batch();
  const auto& task = t.spec.tasks[0];
  auto f = t.model->task_forward(b, task);  // right-padded batch of 3, as in training
  const int64_t prefix = 2 + 3 + static_cast<int64_t>(task.prompt_ids.size()) + 1;
  for (int64_t r = 0; r < 3; ++r) {
    Batch one;
    one.index = {r};
    for (const auto& [m, mb] : b.mods)
      one.mods[m] = {mb.data.narrow(0, r, 1), mb.lengths.narrow(0, r, 1), mb.present.narrow(0, r, 1)};
    auto pl = t.model->prompt_logits(one, t.ask(1));  // task 0's prompt  // [1, prefix, V], the path of braid generate and the server
    ASSERT_EQ(pl.size(1), prefix);
    EXPECT_TRUE(AllClose(pl[0], f.logits[r].narrow(0, 0, prefix), 1e-4, "row " + std::to_string(r)));
  }
}

TEST(MLLM, CachedAndUncachedDecodingGiveTheSameTokens) {
  Tiny t;
  auto b = t.batch();
  auto req = t.ask(12);  // never stops: compares all 12 steps
  auto cached = t.model->generate(b, req);
  req.options.use_cache = false;
  auto full = t.model->generate(b, req);
  ASSERT_EQ(cached.tokens.sizes(), full.tokens.sizes());
  EXPECT_TRUE(torch::equal(cached.tokens, full.tokens)) << cached.tokens << full.tokens;
  EXPECT_EQ(cached.tokens.size(1), 12);
}

TEST(MLLM, SampledGenerationIsDeterministicForASeed) {
  Tiny t;
  auto b = t.batch();
  auto req = t.ask(10);
  req.options.sample.temperature = 1.5;
  req.options.seed = 7;
  auto a = t.model->generate(b, req), a2 = t.model->generate(b, req);
  EXPECT_TRUE(torch::equal(a.tokens, a2.tokens));
  req.options.seed = 8;
  auto c = t.model->generate(b, req);
  EXPECT_FALSE(torch::equal(a.tokens, c.tokens)) << "another seed should draw other tokens";
}

TEST(MLLM, ConstrainedDecodingOnlyEmitsAllowedTokens) {
  Tiny t;
  auto b = t.batch();
  auto req = t.ask(6);
  const auto allowed_ids = ids_of(t.tok, "red heart");
  req.options.allowed = [&](const std::vector<std::vector<int64_t>>& made, int64_t V) {
    auto m = torch::zeros({static_cast<int64_t>(made.size()), V}, torch::kBool);
    for (auto id : allowed_ids) m.select(1, id).fill_(true);
    return m;
  };
  auto g = t.model->generate(b, req);
  ASSERT_EQ(g.tokens.size(1), 6);
  for (int64_t i = 0; i < g.tokens.numel(); ++i)
    EXPECT_NE(std::find(allowed_ids.begin(), allowed_ids.end(), g.tokens.view(-1)[i].item<int64_t>()),
              allowed_ids.end());
}

TEST(MLLM, AnswersNeverHoldChatMarkersOrSlots) {
  Tiny t;
  auto b = t.batch();
  auto req = t.ask(40);
  req.options.sample.temperature = 5.0;  // nearly uniform: every token has a chance
  auto g = t.model->generate(b, req);
  std::set<int64_t> never{t.spec.pad, t.spec.bos, t.spec.user, t.spec.assistant};
  for (const auto& [m, id] : t.spec.slots) never.insert(id);
  for (int64_t i = 0; i < g.tokens.numel(); ++i) EXPECT_EQ(never.count(g.tokens.view(-1)[i].item<int64_t>()), 0u);
}

TEST(GenerationMetrics, KnownValues) {
  EXPECT_DOUBLE_EQ(eval::token_f1("red heart", "Red Heart "), 1.0);
  EXPECT_DOUBLE_EQ(eval::token_f1("red face", "red heart"), 0.5);
  EXPECT_NEAR(eval::token_f1("a b c", "a b"), 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(eval::token_f1("blue", "red heart"), 0.0);
  EXPECT_EQ(eval::text_tokens("红心 Heart"), (std::vector<std::string>{"红", "心", "heart"}));
  // BLEU-4 by hand: 1..4-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths
  EXPECT_NEAR(eval::corpus_bleu4({"the cat sat on the mat"}, {"the cat sat on a mat"}),
              std::pow(5.0 / 6 * 3.0 / 5 * 2.0 / 4 * 1.0 / 3, 0.25), 1e-12);
  EXPECT_DOUBLE_EQ(eval::corpus_bleu4({"red heart"}, {"red heart"}), 0.0) << "no 3- or 4-grams: BLEU-4 is 0";
  EXPECT_NEAR(eval::corpus_bleu4({"a b c d e"}, {"a b c d e"}), 1.0, 1e-12);
  // brevity penalty: hypothesis 4 tokens vs reference 5
  EXPECT_NEAR(eval::corpus_bleu4({"a b c d"}, {"a b c d e"}), std::exp(1.0 - 5.0 / 4), 1e-12);
  EXPECT_DOUBLE_EQ(eval::sentence_chrf("红心", "红心"), 1.0);
  EXPECT_DOUBLE_EQ(eval::sentence_chrf("abc", "xyz"), 0.0);
  // chrF by hand, "ab" vs "abc": 1-grams P 2/2 R 2/3, 2-grams P 1/1 R 1/2 -> P 1, R 7/12, beta 2
  const double P = 1.0, R = 7.0 / 12;
  EXPECT_NEAR(eval::sentence_chrf("ab", "abc"), 5 * P * R / (4 * P + R), 1e-12);
  auto s = eval::score_texts({"red heart", "blue"}, {"red heart", "green apple"});
  EXPECT_DOUBLE_EQ(s["exact"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(s["f1"].get<double>(), 0.5);
}

TEST(MLLM, TrainGenerateAndEvalThroughTheCli) {
  TempDir d("mllm_cli");
  const std::string manifest = make_toy_dataset((d.path / "data").string(), ToyOptions{32, 2, true, false, true});
  const std::string recipe = d.file("r.yaml", kTinyGenerateRecipe);
  const std::string run = (d.path / "run").string();
  // per-group learning rates: a prefix that names no parameter is a one-line error
  auto bad_scale = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run + "_bad") +
                             " --set train.lr_scale.llm=0.1");
  EXPECT_EQ(bad_scale.code, 2);
  EXPECT_NE(bad_scale.err.find("train.lr_scale.llm"), std::string::npos) << bad_scale.err;
  auto tr = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run) +
                      " --set 'train.lr_scale={lm: 0.5}'");
  ASSERT_EQ(tr.code, 0) << tr.err;
  // the training log names each task's loss
  auto lines = read_jsonl(run + "/metrics.jsonl");
  bool named = false;
  for (const auto& l : lines) named = named || (l.contains("name") && l.contains("group"));
  EXPECT_TRUE(named) << "per-task losses in metrics.jsonl";
  EXPECT_NE(tr.err.find("learning rate x0.5 for"), std::string::npos) << tr.err;

  // a second stage from this run reads text with its tokenizer (its LM rows are those ids; its own prompts
  // would make another tokenizer) and loads its weights
  auto st2 = run_braid("train " + q(recipe) + " --data " + q(manifest) + " --out " + q(run + "2") +
                       " --set model.init_from=" + q(run) + " --set train.epochs=1" +
                       " --set 'model.tasks=[{name: name, modality: image, prompt: \"zebra\"}]'");
  ASSERT_EQ(st2.code, 0) << st2.err;
  EXPECT_EQ(read_file(run + "2/tokenizer.model"), read_file(run + "/tokenizer.model"));
  EXPECT_NE(st2.err.find("initialized"), std::string::npos) << st2.err;

  const auto first = read_jsonl(manifest).front();
  const std::string image = (d.path / "data").string() + "/" + first["image"].get<std::string>();
  auto g = run_braid("generate " + q(run) + " --image " + q(image) + " --json --max-tokens 6");
  ASSERT_EQ(g.code, 0) << g.err;
  auto j = nlohmann::json::parse(g.out.substr(g.out.rfind('{')));
  EXPECT_EQ(j["task"], "name");
  EXPECT_EQ(j["prompt"], "what is shown?");
  EXPECT_LE(j["ids"].size(), 6u);
  // the same question twice (greedy): the same answer; streaming prints the same text
  auto g2 = run_braid("generate " + q(run) + " --image " + q(image) + " --max-tokens 6");
  ASSERT_EQ(g2.code, 0) << g2.err;
  EXPECT_EQ(g2.out, j["text"].get<std::string>() + "\n");
  auto gq = run_braid("generate " + q(run) + " --image " + q(image) + " --task group --json");
  ASSERT_EQ(gq.code, 0) << gq.err;
  EXPECT_EQ(nlohmann::json::parse(gq.out.substr(gq.out.rfind('{')))["prompt"], "which group is this?");

  // bad input: one line naming what is wrong
  auto bad = run_braid("generate " + q(run) + " --audio " + q(image));
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("reads no audio"), std::string::npos) << bad.err;
  auto bad_task = run_braid("generate " + q(run) + " --image " + q(image) + " --task colour");
  EXPECT_NE(bad_task.err.find("unknown task 'colour'"), std::string::npos) << bad_task.err;

  auto ev = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --task caption --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  auto m = nlohmann::json::parse(ev.out.substr(ev.out.rfind("\n{") + 1));
  ASSERT_TRUE(m["tasks"].contains("name")) << m.dump();
  EXPECT_FALSE(m["tasks"].contains("group")) << "caption = the text tasks";
  for (const char* k : {"exact", "f1", "bleu4", "chrf"}) EXPECT_TRUE(m["tasks"]["name"].contains(k)) << k;
  EXPECT_TRUE(m["tasks"]["name"].contains("nearest"));
  EXPECT_TRUE(m["tasks"]["name"].contains("prior"));
  EXPECT_FALSE(m["examples"].empty());
  auto qa = run_braid("eval " + q(run) + " --data " + q(manifest) + " --split test --task qa --json");
  ASSERT_EQ(qa.code, 0) << qa.err;
  auto mq = nlohmann::json::parse(qa.out.substr(qa.out.rfind("\n{") + 1));
  EXPECT_TRUE(mq["tasks"]["group"].contains("accuracy"));
}
