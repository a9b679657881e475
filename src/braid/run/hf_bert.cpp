#include "braid/run/hf_bert.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/strings.h"
#include "braid/core/fs.h"
#include "braid/data/tokenizer.h"
#include "braid/models/model.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"

namespace braid::run {

namespace fs = std::filesystem;

namespace {

std::string in_dir(const HfCheckpoint& ck, const std::string& rel) { return (fs::path(ck.dir) / rel).string(); }

// sentence-transformers: pooling mode and Normalize from modules.json and the Pooling config.
void read_sentence_transformers(const HfCheckpoint& ck, nn::HFBertOptions& o) {
  const std::string mj = in_dir(ck, "modules.json");
  std::string pooling_dir;
  if (file_exists(mj)) {
    auto mods = read_json_file(mj);
    BRAID_INPUT_CHECK(mods.is_array(), "{}: expected a JSON list of modules", mj);
    for (size_t i = 0; i < mods.size(); ++i) {
      const std::string where = fmt::format("{} [{}]", mj, i);
      const std::string type = json_string(mods[i], "type", "", where);
      const std::string path = json_string(mods[i], "path", "", where);
      if (ends_with(type, "models.Transformer")) continue;
      if (ends_with(type, "models.Pooling")) {
        pooling_dir = path;
      } else if (ends_with(type, "models.Normalize")) {
        o.normalize = true;
      } else {
        input_error("{}: module '{}' is not supported (braid imports Transformer, Pooling and Normalize)", where, type);
      }
    }
  } else if (file_exists(in_dir(ck, "1_Pooling/config.json"))) {
    pooling_dir = "1_Pooling";
  }
  if (pooling_dir.empty()) return;  // a bare BertModel: mean pooling (documented)
  BRAID_INPUT_CHECK(pooling_dir.find("..") == std::string::npos, "{}: Pooling path '{}' must stay in the folder", mj,
                    pooling_dir);
  const std::string pc = in_dir(ck, pooling_dir + "/config.json");
  BRAID_INPUT_CHECK(file_exists(pc), "{}: the Pooling module has no config.json", pc);
  auto p = read_json_file(pc);
  BRAID_INPUT_CHECK(p.is_object(), "{}: expected a JSON object", pc);
  std::vector<std::string> on;
  for (auto it = p.begin(); it != p.end(); ++it)
    if (it.key().rfind("pooling_mode_", 0) == 0 && it.value().is_boolean() && it.value().get<bool>())
      on.push_back(it.key());
  BRAID_INPUT_CHECK(on.size() == 1, "{}: expected exactly one pooling_mode_* true (mean_tokens, cls_token or max_tokens), "
                    "got {}", pc, on.size());
  if (on[0] == "pooling_mode_mean_tokens")
    o.pooling = "mean";
  else if (on[0] == "pooling_mode_cls_token")
    o.pooling = "cls";
  else if (on[0] == "pooling_mode_max_tokens")
    o.pooling = "max";
  else
    input_error("{}: {} is not supported (braid pools mean_tokens, cls_token or max_tokens)", pc, on[0]);
  const int64_t dim = json_int(p, "word_embedding_dimension", o.hidden_size, pc);
  BRAID_INPUT_CHECK(dim == o.hidden_size, "{}: word_embedding_dimension {} but config.json hidden_size is {}", pc, dim,
                    o.hidden_size);
}

}  // namespace

nn::HFBertOptions hf_bert_options(const HfCheckpoint& ck) {
  BRAID_INPUT_CHECK(!ck.config_path.empty(), "{}: no config.json (a BERT checkpoint needs one)", ck.source);
  const std::string& where = ck.config_path;
  const std::string mt = hf_string(ck, "model_type", "");
  BRAID_INPUT_CHECK(mt == "bert", "{}: key \"model_type\" is '{}', expected 'bert'", where, mt);
  nn::HFBertOptions o;
  o.vocab_size = hf_int(ck, "vocab_size");
  o.hidden_size = hf_int(ck, "hidden_size");
  o.num_hidden_layers = hf_int(ck, "num_hidden_layers");
  o.num_attention_heads = hf_int(ck, "num_attention_heads");
  o.intermediate_size = hf_int(ck, "intermediate_size");
  o.max_position_embeddings = hf_int(ck, "max_position_embeddings");
  o.type_vocab_size = hf_int(ck, "type_vocab_size", 2);
  o.layer_norm_eps = hf_float(ck, "layer_norm_eps", 1e-12);
  o.hidden_act = hf_string(ck, "hidden_act", "gelu");
  BRAID_INPUT_CHECK(o.vocab_size > 0 && o.hidden_size > 0 && o.num_hidden_layers >= 0 && o.num_attention_heads > 0 &&
                        o.intermediate_size > 0 && o.max_position_embeddings > 0 && o.type_vocab_size > 0 &&
                        o.layer_norm_eps > 0,
                    "{}: sizes must be positive (vocab_size, hidden_size, num_attention_heads, intermediate_size, "
                    "max_position_embeddings, type_vocab_size, layer_norm_eps)", where);
  BRAID_INPUT_CHECK(o.hidden_size % o.num_attention_heads == 0,
                    "{}: hidden_size {} is not a multiple of num_attention_heads {}", where, o.hidden_size,
                    o.num_attention_heads);
  BRAID_INPUT_CHECK(o.hidden_act == "gelu" || o.hidden_act == "gelu_new" || o.hidden_act == "gelu_pytorch_tanh" ||
                        o.hidden_act == "relu",
                    "{}: key \"hidden_act\" is '{}'; braid supports gelu, gelu_new, gelu_pytorch_tanh, relu", where,
                    o.hidden_act);
  const std::string pe = hf_string(ck, "position_embedding_type", "absolute");
  BRAID_INPUT_CHECK(pe == "absolute", "{}: key \"position_embedding_type\" is '{}'; braid supports absolute only", where,
                    pe);
  read_sentence_transformers(ck, o);
  return o;
}

ShapeTable hf_bert_shapes(const nn::HFBertOptions& o) {
  const int64_t H = o.hidden_size, I = o.intermediate_size;
  ShapeTable t = {{"embeddings.word_embeddings.weight", {o.vocab_size, H}},
                  {"embeddings.position_embeddings.weight", {o.max_position_embeddings, H}},
                  {"embeddings.token_type_embeddings.weight", {o.type_vocab_size, H}},
                  {"embeddings.LayerNorm.weight", {H}},
                  {"embeddings.LayerNorm.bias", {H}}};
  for (int64_t i = 0; i < o.num_hidden_layers; ++i) {
    const std::string p = fmt::format("encoder.layer.{}.", i);
    for (const char* n : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      t[p + n + ".weight"] = {H, H};
      t[p + n + ".bias"] = {H};
    }
    t[p + "attention.output.LayerNorm.weight"] = {H};
    t[p + "attention.output.LayerNorm.bias"] = {H};
    t[p + "intermediate.dense.weight"] = {I, H};
    t[p + "intermediate.dense.bias"] = {I};
    t[p + "output.dense.weight"] = {H, I};
    t[p + "output.dense.bias"] = {H};
    t[p + "output.LayerNorm.weight"] = {H};
    t[p + "output.LayerNorm.bias"] = {H};
  }
  return t;
}

TensorMap hf_bert_tensors(const HfCheckpoint& ck, const nn::HFBertOptions& o) {
  TensorMap t = strip_prefix(ck.tensors, "bert.");
  for (auto it = t.begin(); it != t.end();) {
    if (it->first.rfind("pooler.", 0) == 0)
      it = t.erase(it);  // BertModel's pooler: sentence-transformers does not use it
    else
      ++it;
  }
  expect_tensors(t, hf_bert_shapes(o), ck.source);
  return t;
}

int64_t hf_bert_max_tokens(const HfCheckpoint& ck, const nn::HFBertOptions& o) {
  int64_t n = std::min<int64_t>(512, o.max_position_embeddings);
  const std::string sb = in_dir(ck, "sentence_bert_config.json");
  if (file_exists(sb)) {
    auto j = read_json_file(sb);
    n = json_int(j, "max_seq_length", n, sb);
    BRAID_INPUT_CHECK(n > 0, "{}: max_seq_length must be positive", sb);
  }
  return std::min(n, o.max_position_embeddings);
}

nlohmann::json import_hf_bert(const HfCheckpoint& ck, const std::string& out_dir) {
  const auto o = hf_bert_options(ck);
  const TensorMap weights = hf_bert_tensors(ck, o);
  const int64_t max_tokens = hf_bert_max_tokens(ck, o);
  // the checkpoint's own tokenizer
  std::string tok;
  for (const char* n : {"tokenizer.json", "vocab.txt"})
    if (tok.empty() && file_exists(in_dir(ck, n))) tok = in_dir(ck, n);
  BRAID_INPUT_CHECK(!tok.empty(), "{}: no tokenizer.json or vocab.txt in the checkpoint folder (braid reads text with "
                    "the checkpoint's own tokenizer)", ck.dir);

  {  // a tokenizer with ids past the embedding rows would make a run that cannot open: refuse before writing
    const int64_t n = data::Tokenizer::load(tok).vocab_size();
    BRAID_INPUT_CHECK(n <= o.vocab_size, "{}: the tokenizer has {} ids but config.json vocab_size is {}", tok, n,
                      o.vocab_size);
  }
  const RunDir rd(out_dir);
  BRAID_INPUT_CHECK(!rd.is_run(), "{}: already a braid run ({} exists); pick another --out or remove it", out_dir,
                    rd.recipe());
  make_dirs(out_dir);
  const std::string enc = fmt::format(
      "{{name: bert, vocab_size: {}, hidden_size: {}, num_hidden_layers: {}, num_attention_heads: {}, "
      "intermediate_size: {}, max_position_embeddings: {}, type_vocab_size: {}, layer_norm_eps: {}, hidden_act: {}, "
      "pooling: {}, normalize: {}}}",
      o.vocab_size, o.hidden_size, o.num_hidden_layers, o.num_attention_heads, o.intermediate_size,
      o.max_position_embeddings, o.type_vocab_size, fmt::format("{:g}", o.layer_norm_eps), o.hidden_act, o.pooling,
      o.normalize ? "true" : "false");
  const std::string recipe = fmt::format(
      "# imported by `braid import hf {}` (docs/weights.md): the checkpoint's text tower as a braid run.\n"
      "# braid embed RUN --text \"...\" gives its sentence embedding; model.init_from: RUN loads the tower.\n"
      "task: align\nseed: 0\nthreads: 0\ndevice: cpu\n"
      "data:\n  text: {{view: \"\", max_tokens: {}}}\n"
      "model:\n  name: dual_tower\n  modalities: [text]\n  encoders:\n    text: {}\n"
      "  embed_dim: {}\n  projection: {{hidden: []}}\n  loss: clip\n  embed_only: true\n",
      ck.source, max_tokens, enc, o.hidden_size);
  atomic_write_text(rd.recipe(), recipe);
  const std::string tok_dst = rd.tokenizer_as(tok);
  atomic_write_text(tok_dst, read_text_file(tok));
  if (ends_with(tok, "vocab.txt") && file_exists(in_dir(ck, "tokenizer_config.json")))
    atomic_write_text(rd.tokenizer_config(), read_text_file(in_dir(ck, "tokenizer_config.json")));

  // the model the recipe builds, with the checkpoint's tensors and an identity projection
  Config cfg = Config::from_file(rd.recipe());
  models::ModelContext ctx;
  ctx.modalities = {"text"};
  ctx.task = models::Task::Align;
  nn::EncoderContext e;
  e.modality = "text";
  e.vocab_size = o.vocab_size;
  ctx.encoders["text"] = e;
  auto model = models::model_registry().make(cfg.at("model"), ctx);
  TensorMap all = module_tensors(*model);
  size_t replaced = 0;
  for (const auto& [n, t] : weights) {
    auto it = all.find("enc_text." + n);
    TORCH_CHECK(it != all.end(), "bert import: the encoder has no parameter ", n);  // the table is the encoder's
    it->second = t;
    ++replaced;
  }
  size_t enc_params = 0;
  for (auto& [n, t] : all) {
    if (n.rfind("enc_text.", 0) == 0) ++enc_params;
    if (n.rfind("proj_text.", 0) == 0)
      t = t.dim() == 2 ? torch::eye(t.size(0), t.size(1)) : torch::zeros_like(t);
  }
  TORCH_CHECK(enc_params == replaced, "bert import: ", enc_params, " encoder tensors but ", replaced, " imported");
  load_module_tensors(*model, all, ck.source);
  save_weights(*model, rd.model());

  nlohmann::json imported = {{"format", "huggingface"},
                             {"source", fs::absolute(ck.source).lexically_normal().string()},
                             {"model_type", "bert"},
                             {"architectures", ck.config.value("architectures", nlohmann::json::array())},
                             {"config_sha256", file_sha256(ck.config_path)},
                             {"weight_files", nlohmann::json::array()},
                             {"tokenizer", fs::path(tok).filename().string()},
                             {"pooling", o.pooling},
                             {"normalize", o.normalize},
                             {"max_tokens", max_tokens}};
  for (const auto& f : ck.weight_files) imported["weight_files"].push_back(fs::path(f).filename().string());
  nlohmann::json facts = {{"task", "align"},
                          {"modalities", {"text"}},
                          {"outputs", 0},
                          {"braid_version", BRAID_VERSION},
                          {"imported", imported}};
  atomic_write_text(rd.facts(), facts.dump(1) + "\n");
  spdlog::info("imported {} BERT tensors ({} layers, hidden {}, {} pooling{}) from {} into {}", weights.size(),
               o.num_hidden_layers, o.hidden_size, o.pooling, o.normalize ? " + normalize" : "", ck.source, out_dir);
  return facts;
}

}  // namespace braid::run
