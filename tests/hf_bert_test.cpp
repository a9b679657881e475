// Hugging Face checkpoints: the shared reader (run/hf_checkpoint.h), the BERT encoder against
// sentence-transformers goldens (tests/fixtures/hf/bert/, made by scripts/hf/make_bert_fixtures.py),
// and `braid import hf`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/safetensors.h"
#include "braid/models/model.h"
#include "braid/nn/encoders/hf_bert.h"
#include "braid/run/hf_bert.h"
#include "braid/run/hf_checkpoint.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"
#include "test_util.h"

using namespace braid;
using braid::test::ExpectInputError;
using braid::test::TempDir;

namespace {

TensorMap two_tensors() {
  return {{"a.weight", torch::arange(6, torch::kFloat32).reshape({2, 3})}, {"b.bias", torch::ones({4}, torch::kFloat32)}};
}

}  // namespace

TEST(HfCheckpoint, ReadsSingleFileAndConvertsHalfToFloat) {
  TempDir d("hfck");
  TensorMap t = two_tensors();
  t["c.weight"] = torch::full({2}, 1.5, torch::kFloat16);
  t["d.weight"] = torch::full({3}, -2.25, torch::kBFloat16);
  t["embeddings.position_ids"] = torch::arange(8).unsqueeze(0);  // I64 buffer: left out, listed
  write_safetensors(d.file("model.safetensors"), t);
  d.file("config.json", R"({"model_type": "bert", "hidden_size": 32})");
  auto ck = run::open_hf_checkpoint(d.path.string());
  ASSERT_EQ(ck.tensors.size(), 4u);
  EXPECT_EQ(ck.skipped, std::vector<std::string>{"embeddings.position_ids"});
  for (const auto& [n, v] : ck.tensors) EXPECT_EQ(v.scalar_type(), torch::kFloat32) << n;
  EXPECT_FLOAT_EQ(ck.tensors["c.weight"][1].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(ck.tensors["d.weight"][0].item<float>(), -2.25f);
  EXPECT_TRUE(torch::equal(ck.tensors["a.weight"], t["a.weight"]));
  EXPECT_EQ(run::hf_int(ck, "hidden_size"), 32);
  EXPECT_EQ(run::hf_string(ck, "model_type", ""), "bert");
  ExpectInputError([&] { run::hf_int(ck, "num_hidden_layers"); }, "config.json", "num_hidden_layers");
  ExpectInputError([&] { run::hf_int(ck, "model_type"); }, "config.json", "must be an integer");
  // The file itself opens the same (config from its folder).
  auto ck2 = run::open_hf_checkpoint(d.file("model.safetensors"));
  EXPECT_EQ(ck2.tensors.size(), 4u);
  EXPECT_EQ(run::hf_int(ck2, "hidden_size"), 32);
}

TEST(HfCheckpoint, RefusesF64AndI8NamingTheTensor) {
  for (auto st : {torch::kFloat64, torch::kInt8}) {
    TempDir d("hfck");
    TensorMap t = two_tensors();
    t["bad.weight"] = torch::zeros({2}, st);
    write_safetensors(d.file("model.safetensors"), t);
    ExpectInputError([&] { run::open_hf_checkpoint(d.path.string()); }, "model.safetensors", "'bad.weight'");
  }
}

TEST(HfCheckpoint, ShardedIndex) {
  TempDir d("hfck");
  write_safetensors(d.file("model-00001-of-00002.safetensors"), {{"a.weight", torch::ones({2, 3})}});
  write_safetensors(d.file("model-00002-of-00002.safetensors"), {{"b.bias", torch::zeros({4})}});
  d.file("model.safetensors.index.json", R"({"metadata": {}, "weight_map": {
      "a.weight": "model-00001-of-00002.safetensors", "b.bias": "model-00002-of-00002.safetensors"}})");
  auto ck = run::open_hf_checkpoint(d.path.string());
  EXPECT_EQ(ck.tensors.size(), 2u);
  EXPECT_EQ(ck.weight_files.size(), 2u);
  EXPECT_EQ(ck.tensors["b.bias"].sizes(), torch::IntArrayRef({4}));
  // An index pointing at a missing shard names the shard.
  d.file("model.safetensors.index.json", R"({"weight_map": {
      "a.weight": "model-00001-of-00002.safetensors", "b.bias": "model-00003-of-00002.safetensors"}})");
  ExpectInputError([&] { run::open_hf_checkpoint(d.path.string()); }, "model.safetensors.index.json",
                   "model-00003-of-00002.safetensors");
  // A tensor mapped to a shard that lacks it.
  d.file("model.safetensors.index.json", R"({"weight_map": {
      "a.weight": "model-00002-of-00002.safetensors", "b.bias": "model-00002-of-00002.safetensors"}})");
  ExpectInputError([&] { run::open_hf_checkpoint(d.path.string()); }, "model-00002-of-00002.safetensors", "'a.weight'");
  // A shard name that leaves the folder.
  d.file("model.safetensors.index.json", R"({"weight_map": {"a.weight": "../x.safetensors"}})");
  ExpectInputError([&] { run::open_hf_checkpoint(d.path.string()); }, "model.safetensors.index.json", "same folder");
}

TEST(HfCheckpoint, RefusesPickleAndEmptyFolders) {
  TempDir d("hfck");
  ExpectInputError([&] { run::open_hf_checkpoint(d.path.string()); }, d.path.string(), "model.safetensors");
  d.file("pytorch_model.bin", "not read");
  ExpectInputError([&] { run::open_hf_checkpoint(d.path.string()); }, d.path.string(), "pytorch_model.bin");
  ExpectInputError([&] { run::open_hf_checkpoint(d.path.string() + "/nope"); }, "nope", "no such");
}

TEST(HfCheckpoint, ExpectTensorsNamesFirstProblem) {
  TensorMap t = two_tensors();
  run::ShapeTable want = {{"a.weight", {2, 3}}, {"b.bias", {4}}};
  EXPECT_NO_THROW(run::expect_tensors(t, want, "ck"));
  auto missing = want;
  missing["c.weight"] = {5};
  ExpectInputError([&] { run::expect_tensors(t, missing, "ck"); }, "ck", "'c.weight' (shape [5]) is missing");
  auto fewer = want;
  fewer.erase("b.bias");
  ExpectInputError([&] { run::expect_tensors(t, fewer, "ck"); }, "ck", "unexpected tensor 'b.bias'");
  EXPECT_NO_THROW(run::expect_tensors(t, fewer, "ck", {"b.bias"}));
  auto shaped = want;
  shaped["a.weight"] = {3, 2};
  ExpectInputError([&] { run::expect_tensors(t, shaped, "ck"); }, "ck",
                   "'a.weight' has shape [2, 3], expected [3, 2]");
}

TEST(HfCheckpoint, Sha256OfKnownStrings) {
  TempDir d("hfck");
  EXPECT_EQ(run::file_sha256(d.file("abc", "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string s(1000, 'a');
  // sha256 of 1000 'a' (python3 -c "import hashlib;print(hashlib.sha256(b'a'*1000).hexdigest())")
  EXPECT_EQ(run::file_sha256(d.file("a1000", s)),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

// ---- the BERT encoder and `braid import hf` against tests/fixtures/hf/bert (scripts/hf/make_bert_fixtures.py)

namespace {

std::string bert_dir() { return std::string(BRAID_FIXTURES) + "/hf/bert/model"; }
TensorMap bert_golden() { return read_safetensors(std::string(BRAID_FIXTURES) + "/hf/bert/golden.safetensors"); }

// A copy of the fixture checkpoint whose tensors `edit` changes.
std::string edited_copy(const TempDir& d, const std::function<void(TensorMap&)>& edit) {
  const std::string dst = (d.path / "ck").string();
  std::filesystem::copy(bert_dir(), dst, std::filesystem::copy_options::recursive);
  auto t = read_safetensors(dst + "/model.safetensors");
  edit(t);
  write_safetensors(dst + "/model.safetensors", t);
  return dst;
}

std::shared_ptr<nn::HFBertImpl> bert_from_fixture(const std::string& pooling, bool normalize) {
  auto ck = run::open_hf_checkpoint(bert_dir());
  auto o = run::hf_bert_options(ck);
  o.pooling = pooling;
  o.normalize = normalize;
  nn::EncoderContext e;
  e.modality = "text";
  e.vocab_size = o.vocab_size;
  auto m = std::make_shared<nn::HFBertImpl>(o, e);
  load_module_tensors(*m, run::hf_bert_tensors(ck, o), ck.source);
  m->eval();
  return m;
}

}  // namespace

TEST(HfBert, OptionsFromConfigAndSentenceTransformersFiles) {
  auto ck = run::open_hf_checkpoint(bert_dir());
  auto o = run::hf_bert_options(ck);
  EXPECT_EQ(o.hidden_size, 32);
  EXPECT_EQ(o.num_hidden_layers, 2);
  EXPECT_EQ(o.num_attention_heads, 4);
  EXPECT_EQ(o.intermediate_size, 37);
  EXPECT_EQ(o.max_position_embeddings, 40);
  EXPECT_EQ(o.pooling, "mean");
  EXPECT_TRUE(o.normalize);
  EXPECT_EQ(run::hf_bert_max_tokens(ck, o), 32);
}

TEST(HfBert, MatchesSentenceTransformersOnTokenIds) {
  auto g = bert_golden();
  torch::NoGradGuard ng;
  for (const std::string mode : {"mean", "cls", "max"}) {
    auto m = bert_from_fixture(mode, false);
    auto got = m->sentence(g["ids"], g["lengths"]);
    EXPECT_TRUE(test::AllClose(got, g["emb_" + mode], 1e-4, "bert " + mode + " pooling"));
  }
  // mean + Normalize: SentenceTransformer(model).encode(texts)
  auto m = bert_from_fixture("mean", true);
  EXPECT_TRUE(test::AllClose(m->sentence(g["ids"], g["lengths"]), g["st"], 1e-4, "bert sentence-transformers"));
  // padding does not change a row: one text alone, unpadded
  auto one = m->sentence(g["ids"].slice(0, 4, 5).slice(1, 0, g["lengths"][4].item<int64_t>()), g["lengths"].slice(0, 4, 5));
  EXPECT_TRUE(test::AllClose(one, g["st"].slice(0, 4, 5), 1e-5, "bert unpadded row"));
}

TEST(HfBert, ToleranceTellsTheGeluVariantsApart) {
  // the parity tolerance (1e-4) is tight enough to see tanh GELU in place of erf GELU
  auto g = bert_golden();
  torch::NoGradGuard ng;
  auto m = bert_from_fixture("mean", false);
  m->options.hidden_act = "gelu_new";
  const double d = (m->sentence(g["ids"], g["lengths"]) - g["emb_mean"]).abs().max().item<double>();
  EXPECT_GT(d, 1e-4);  // measured 4.4e-4
}

TEST(HfBert, ImportRefusesMissingUnexpectedAndMisShapedTensors) {
  const std::string w = "encoder.layer.1.output.dense.weight";
  {
    TempDir d("hfbert");
    auto dir = edited_copy(d, [&](TensorMap& t) { t.erase(w); });
    auto ck = run::open_hf_checkpoint(dir);
    ExpectInputError([&] { run::hf_bert_tensors(ck, run::hf_bert_options(ck)); }, dir, "'" + w + "' (shape [32, 37]) is missing");
  }
  {
    TempDir d("hfbert");
    auto dir = edited_copy(d, [&](TensorMap& t) { t["encoder.layer.2.output.dense.weight"] = torch::zeros({32, 37}); });
    auto ck = run::open_hf_checkpoint(dir);
    ExpectInputError([&] { run::hf_bert_tensors(ck, run::hf_bert_options(ck)); }, dir,
                     "unexpected tensor 'encoder.layer.2.output.dense.weight'");
  }
  {
    TempDir d("hfbert");
    auto dir = edited_copy(d, [&](TensorMap& t) { t[w] = torch::zeros({37, 32}); });
    auto ck = run::open_hf_checkpoint(dir);
    ExpectInputError([&] { run::hf_bert_tensors(ck, run::hf_bert_options(ck)); }, dir,
                     "'" + w + "' has shape [37, 32], expected [32, 37]");
  }
  {  // an F64 weight in a real checkpoint folder
    TempDir d("hfbert");
    auto dir = edited_copy(d, [&](TensorMap& t) { t[w] = t[w].to(torch::kFloat64); });
    ExpectInputError([&] { run::open_hf_checkpoint(dir); }, "model.safetensors", "'" + w + "' is Double");
  }
}

TEST(HfBert, ImportRefusesUnsupportedConfig) {
  TempDir d("hfbert");
  auto dir = edited_copy(d, [](TensorMap&) {});
  auto cfg = test::read_file(dir + "/config.json");
  auto set = [&](const std::string& from, const std::string& to) {
    auto s = cfg;
    auto at = s.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    test::write_file(dir + "/config.json", s);
  };
  set("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"");
  ExpectInputError([&] { run::hf_bert_options(run::open_hf_checkpoint(dir)); }, "config.json", "hidden_act");
  set("\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
  ExpectInputError([&] { run::hf_bert_options(run::open_hf_checkpoint(dir)); }, "config.json", "num_attention_heads 5");
  test::write_file(dir + "/config.json", cfg);
  test::write_file(dir + "/modules.json", R"([{"type": "sentence_transformers.models.Transformer", "path": ""},
      {"type": "sentence_transformers.models.Dense", "path": "2_Dense"}])");
  ExpectInputError([&] { run::hf_bert_options(run::open_hf_checkpoint(dir)); }, "modules.json", "models.Dense");
}

TEST(HfBert, ImportWritesARunWhoseModelEmbedsLikeSentenceTransformers) {
  TempDir d("hfbert");
  const std::string out = (d.path / "run").string();
  auto ck = run::open_hf_checkpoint(bert_dir());
  auto facts = run::import_hf_bert(ck, out);
  const run::RunDir rd(out);
  EXPECT_TRUE(file_exists(rd.model()));
  EXPECT_EQ(rd.tokenizer(), out + "/tokenizer.json");
  EXPECT_EQ(test::read_file(rd.tokenizer()), test::read_file(bert_dir() + "/tokenizer.json"));
  auto written = nlohmann::json::parse(test::read_file(rd.facts()));
  EXPECT_EQ(written, facts);
  EXPECT_EQ(written["imported"]["model_type"], "bert");
  EXPECT_EQ(written["imported"]["config_sha256"], run::file_sha256(bert_dir() + "/config.json"));
  EXPECT_EQ(written["imported"]["pooling"], "mean");
  // the recipe's model with model.pt: its text embedding is sentence-transformers'
  Config cfg = Config::from_file(rd.recipe());
  models::ModelContext ctx;
  ctx.modalities = {"text"};
  ctx.task = models::Task::Align;
  nn::EncoderContext e;
  e.modality = "text";
  e.vocab_size = 97;
  ctx.encoders["text"] = e;
  auto model = models::model_registry().make(cfg.at("model"), ctx);
  run::load_weights(*model, rd.model());
  model->eval();
  auto g = bert_golden();
  torch::NoGradGuard ng;
  ModalityBatch mb{g["ids"], g["lengths"], torch::ones({g["ids"].size(0)}, torch::kBool)};
  EXPECT_TRUE(test::AllClose(model->embed("text", mb), g["st"], 1e-4, "imported run embedding"));
  // the run cannot be imported over
  ExpectInputError([&] { run::import_hf_bert(ck, out); }, out, "already a braid run");
  // and training it alone is refused (one modality: nothing to align)
  Batch b;
  b.index = {0, 1, 2, 3, 4, 5};
  b.mods["text"] = mb;
  EXPECT_THROW(model->objective(b), InputError);
}

TEST(HfBert, CliImportDispatchesOnModelType) {
  TempDir d("hfbert");
  auto dir = edited_copy(d, [](TensorMap&) {});
  const std::string out = (d.path / "run").string();
  auto r = test::run_braid("import hf " + test::q(dir) + " --out " + test::q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("imported bert"), std::string::npos) << r.out;
  EXPECT_TRUE(file_exists(out + "/model.pt"));
  // braid embed RUN --text: the checkpoint's tokenizer + the tower = SentenceTransformer.encode(texts)
  auto golden = nlohmann::json::parse(test::read_file(std::string(BRAID_FIXTURES) + "/hf/bert/golden.json"));
  std::string args = "embed " + test::q(out) + " --threads 1";
  for (const auto& t : golden["texts"]) args += " --text " + test::q(t.get<std::string>());
  r = test::run_braid(args);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::vector<float>> rows;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["text"], golden["texts"][rows.size()]);
    rows.push_back(j["embedding"].get<std::vector<float>>());
  }
  ASSERT_EQ(rows.size(), golden["texts"].size());
  auto got = torch::empty({static_cast<int64_t>(rows.size()), 32});
  for (size_t i = 0; i < rows.size(); ++i) got[i] = torch::tensor(rows[i]);
  EXPECT_TRUE(test::AllClose(got, bert_golden()["st"], 1e-4, "braid embed --text vs sentence-transformers"));
  auto cfg = test::read_file(dir + "/config.json");
  cfg.replace(cfg.find("\"model_type\": \"bert\""), 20, "\"model_type\": \"gpt2\"");
  test::write_file(dir + "/config.json", cfg);
  r = test::run_braid("import hf " + test::q(dir) + " --out " + test::q(out + "2"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'gpt2'; braid imports bert"), std::string::npos) << r.err;
}

namespace {

// `braid import hf` of the fixture into DIR/bert; returns the run directory.
std::string import_fixture_bert(const TempDir& d) {
  const std::string bert_run = (d.path / "bert").string();
  auto r = test::run_braid("import hf " + test::q(bert_dir()) + " --out " + test::q(bert_run));
  EXPECT_EQ(r.code, 0) << r.err;
  return bert_run;
}

// The run in `run_dir` reads text with the fixture's tokenizer and its enc_text.* tensors are the fixture's
// (a frozen tower left unchanged by training); returns how many tensors were compared.
size_t expect_fixture_text_tower(const std::string& run_dir) {
  const run::RunDir rd(run_dir);
  EXPECT_TRUE(test::read_file(rd.tokenizer()) == test::read_file(bert_dir() + "/tokenizer.json"))
      << run_dir << " reads text with " << rd.tokenizer();
  auto ck = run::open_hf_checkpoint(bert_dir());
  auto want = run::hf_bert_tensors(ck, run::hf_bert_options(ck));
  torch::serialize::InputArchive ar;
  ar.load_from(rd.model());
  size_t compared = 0;
  for (const auto& [n, t] : want) {
    torch::Tensor got;
    if (!ar.try_read("enc_text." + n, got)) {
      ADD_FAILURE() << run_dir << ": no enc_text." << n;
      continue;
    }
    EXPECT_TRUE(torch::equal(got, t)) << run_dir << " " << n;
    ++compared;
  }
  return compared;
}

}  // namespace

TEST(HfBert, LiTRecipeTrainsImageTowerAgainstFrozenImportedText) {
  // `model.init_from` an imported run + freeze: [text] + data.text.tokenizer = the run's tokenizer.json
  TempDir d("hfbert");
  const std::string bert_run = import_fixture_bert(d);
  test::ToyOptions toy;
  toy.n = 24;
  toy.audio = false;
  const std::string manifest = test::make_toy_dataset((d.path / "data").string(), toy);
  const std::string recipe = d.file("lit.yaml", std::string(R"(
task: align
seed: 0
threads: 1
data:
  workers: 1
  image: {size: 16}
  text: {view: "", max_tokens: 16, tokenizer: )") + bert_run + R"(/tokenizer.json}
model:
  name: dual_tower
  modalities: [image, text]
  encoders:
    image: {name: image_vit, patch: 4, dim: 16, depth: 1, heads: 2}
    text: {name: bert, vocab_size: 97, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
           intermediate_size: 37, max_position_embeddings: 40, pooling: mean, normalize: true}
  embed_dim: 16
  loss: clip
  freeze: [text]
  init_from: [)" + bert_run + R"(]   # a list of runs (one here); dual_tower used to refuse the list form
train: {epochs: 2, batch_size: 8, lr: 0.003, log_every: 1}
)");
  const std::string run = (d.path / "lit").string();
  auto r = test::run_braid("train " + test::q(recipe) + " --data " + test::q(manifest) + " --out " + test::q(run));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(run::RunDir(run).tokenizer(), run + "/tokenizer.json");
  // the text tower is the imported one, unchanged by training; the image tower trained
  EXPECT_EQ(expect_fixture_text_tower(run), 37u);
}

// `braid quickstart --pretrained-text RUN`: a text_pretrained row and a fused_pretrained model that
// read text through the frozen imported tower (its weights unchanged in both), beside the
// from-scratch rows; a folder that holds no text tower is refused before any work starts.
TEST(HfBert, QuickstartReadsTextThroughTheFrozenImportedTower) {
  TempDir d("hfbert");
  const std::string bert_run = import_fixture_bert(d);
  test::ToyOptions toy;
  toy.n = 24;
  test::make_toy_dataset((d.path / "data").string(), toy);
  const std::string out = (d.path / "qs").string();
  auto r = test::run_braid("quickstart --threads 1 --data " + test::q((d.path / "data").string()) + " --out " + test::q(out) +
                      " --pretrained-text " + test::q(bert_run));
  ASSERT_EQ(r.code, 0) << r.err;
  auto res = nlohmann::json::parse(test::read_file(out + "/results.json"));
  std::vector<std::string> rows;
  for (const auto& row : res["rows"]) rows.push_back(row["model"]);
  EXPECT_EQ(rows, (std::vector<std::string>{"image", "text", "text_pretrained", "audio", "fused_pretrained"}));
  EXPECT_EQ(res["pretrained_text"], bert_run);
  for (const char* name : {"text_pretrained", "fused_pretrained"}) EXPECT_EQ(expect_fixture_text_tower(out + "/" + name), 37u);
  // the from-scratch text row keeps its own tokenizer and bag of words
  EXPECT_NE(test::read_file(run::RunDir(out + "/text").recipe()).find("text_bow"), std::string::npos);

  // a run folder without a text tower: one line naming the folder and the key, nothing trained
  const std::string bad = (d.path / "notext").string();
  std::filesystem::create_directories(bad);
  test::write_file(bad + "/model.pt", "x");
  test::write_file(bad + "/recipe.resolved.yaml", "model: {name: dual_tower, encoders: {image: {name: image_cnn}}}\n");
  r = test::run_braid("quickstart --data " + test::q((d.path / "nodata").string()) + " --out " +
                      test::q((d.path / "qs2").string()) + " --pretrained-text " + test::q(bad));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--pretrained-text " + bad + ": " + bad + "/recipe.resolved.yaml has no model.encoders.text"),
            std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(d.path / "nodata"));
  EXPECT_FALSE(std::filesystem::exists(d.path / "qs2"));
  test::write_file(bad + "/recipe.resolved.yaml", "model: [1, 2\n");
  r = test::run_braid("quickstart --data " + test::q((d.path / "nodata").string()) + " --out " +
                      test::q((d.path / "qs2").string()) + " --pretrained-text " + test::q(bad));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(bad + "/recipe.resolved.yaml: invalid YAML"), std::string::npos) << r.err;
}

TEST(HfBert, ImportWithVocabTxtOnly) {
  // a checkpoint with vocab.txt (+ tokenizer_config.json) and no tokenizer.json: the run reads text the same
  TempDir d("hfbert");
  auto dir = edited_copy(d, [](TensorMap&) {});
  std::filesystem::remove(dir + "/tokenizer.json");
  const std::string out = (d.path / "run").string();
  auto r = test::run_braid("import hf " + test::q(dir) + " --out " + test::q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  const run::RunDir rd(out);
  EXPECT_EQ(rd.tokenizer(), out + "/vocab.txt");
  EXPECT_TRUE(file_exists(rd.tokenizer_config()));
  auto golden = nlohmann::json::parse(test::read_file(std::string(BRAID_FIXTURES) + "/hf/bert/golden.json"));
  r = test::run_braid("embed " + test::q(out) + " --threads 1 --text " + test::q(golden["texts"][1].get<std::string>()));
  ASSERT_EQ(r.code, 0) << r.err;
  auto got = torch::tensor(nlohmann::json::parse(r.out)["embedding"].get<std::vector<float>>()).unsqueeze(0);
  EXPECT_TRUE(test::AllClose(got, bert_golden()["st"].slice(0, 1, 2), 1e-4, "vocab.txt run vs sentence-transformers"));
  // a vocabulary with more ids than the embedding rows: refused before anything is written
  test::write_file(dir + "/vocab.txt", test::read_file(dir + "/vocab.txt") + "extra1\nextra2\nextra3\n");
  r = test::run_braid("import hf " + test::q(dir) + " --out " + test::q(out + "3"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("vocab.txt: the tokenizer has 100 ids but config.json vocab_size is 97"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(out + "3"));
  // no tokenizer at all: refused naming the folder
  std::filesystem::remove(dir + "/vocab.txt");
  r = test::run_braid("import hf " + test::q(dir) + " --out " + test::q(out + "2"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no tokenizer.json or vocab.txt"), std::string::npos) << r.err;
}
