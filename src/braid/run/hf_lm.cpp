#include "braid/run/hf_lm.h"

#include <torch/torch.h>

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/tokenizer.h"
#include "braid/run/hf_checkpoint.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"

namespace braid::run {

namespace {

using json = nlohmann::json;

// Typed reads of config.json keys; `def` null = the key is required.
int64_t get_int(const json& c, const std::string& key, const std::string& origin, const json& def = nullptr) {
  if (!c.contains(key) || c[key].is_null()) {
    BRAID_INPUT_CHECK(!def.is_null(), "{}: key '{}' is missing (expected an integer)", origin, key);
    return def.get<int64_t>();
  }
  BRAID_INPUT_CHECK(c[key].is_number_integer(), "{}: key '{}' must be an integer, got {}", origin, key, c[key].dump());
  return c[key].get<int64_t>();
}
double get_num(const json& c, const std::string& key, const std::string& origin, double def) {
  if (!c.contains(key) || c[key].is_null()) return def;
  BRAID_INPUT_CHECK(c[key].is_number(), "{}: key '{}' must be a number, got {}", origin, key, c[key].dump());
  return c[key].get<double>();
}
bool get_bool(const json& c, const std::string& key, const std::string& origin, bool def) {
  if (!c.contains(key) || c[key].is_null()) return def;
  BRAID_INPUT_CHECK(c[key].is_boolean(), "{}: key '{}' must be true or false, got {}", origin, key, c[key].dump());
  return c[key].get<bool>();
}
std::string get_str(const json& c, const std::string& key, const std::string& origin, const std::string& def) {
  if (!c.contains(key) || c[key].is_null()) return def;
  BRAID_INPUT_CHECK(c[key].is_string(), "{}: key '{}' must be a string, got {}", origin, key, c[key].dump());
  return c[key].get<std::string>();
}

}  // namespace

nn::lm::LMOptions hf_lm_options(const json& c, const std::string& origin) {
  BRAID_INPUT_CHECK(c.is_object(), "{}: expected a JSON object (a Hugging Face config.json)", origin);
  const std::string type = get_str(c, "model_type", origin, "");
  BRAID_INPUT_CHECK(type == "llama" || type == "qwen2",
                    "{}: key 'model_type' is '{}'; braid's LM backbone imports llama (Llama, SmolLM2, TinyLlama) and "
                    "qwen2", origin, type);
  const std::string act = get_str(c, "hidden_act", origin, "silu");
  BRAID_INPUT_CHECK(act == "silu", "{}: key 'hidden_act' is '{}'; braid's SwiGLU needs silu", origin, act);
  nn::lm::LMOptions o;
  o.vocab_size = get_int(c, "vocab_size", origin);
  o.dim = get_int(c, "hidden_size", origin);
  o.layers = get_int(c, "num_hidden_layers", origin);
  o.heads = get_int(c, "num_attention_heads", origin);
  o.kv_heads = get_int(c, "num_key_value_heads", origin, o.heads);
  o.hidden = get_int(c, "intermediate_size", origin);
  o.rope_theta = get_num(c, "rope_theta", origin, 10000.0);
  o.norm_eps = get_num(c, "rms_norm_eps", origin, 1e-6);
  o.max_seq = get_int(c, "max_position_embeddings", origin, 2048);
  o.tie_embeddings = get_bool(c, "tie_word_embeddings", origin, false);
  if (type == "qwen2") {
    o.attention_bias = true;
    BRAID_INPUT_CHECK(!get_bool(c, "use_sliding_window", origin, false),
                      "{}: key 'use_sliding_window' is true; braid's attention is full causal attention", origin);
  } else {
    BRAID_INPUT_CHECK(!get_bool(c, "attention_bias", origin, false),
                      "{}: key 'attention_bias' is true; a Llama attention bias includes o_proj, which braid's "
                      "attention lacks", origin);
  }
  BRAID_INPUT_CHECK(!get_bool(c, "mlp_bias", origin, false),
                    "{}: key 'mlp_bias' is true; braid's SwiGLU has no biases", origin);
  BRAID_INPUT_CHECK(o.heads > 0 && o.dim % o.heads == 0,
                    "{}: key 'num_attention_heads' ({}) must divide hidden_size ({})", origin, o.heads, o.dim);
  if (c.contains("head_dim") && !c["head_dim"].is_null())
    BRAID_INPUT_CHECK(get_int(c, "head_dim", origin) == o.dim / o.heads,
                      "{}: key 'head_dim' is {}; braid needs hidden_size / num_attention_heads = {}", origin,
                      c["head_dim"].dump(), o.dim / o.heads);

  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) {
    const json& r = c["rope_scaling"];
    BRAID_INPUT_CHECK(r.is_object(), "{}: key 'rope_scaling' must be null or an object, got {}", origin, r.dump());
    const std::string where = origin + ": rope_scaling";
    std::string rt = get_str(r, "rope_type", where, get_str(r, "type", where, ""));
    const std::string tkey = r.contains("rope_type") ? "rope_scaling.rope_type" : "rope_scaling.type";
    if (rt == "linear" || rt == "llama3") {
      o.rope_scaling = rt;
      BRAID_INPUT_CHECK(r.contains("factor"), "{}: key 'rope_scaling.factor' is missing", origin);
      o.rope_factor = get_num(r, "factor", where, 1.0);
      if (rt == "llama3") {
        for (const char* k : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
          BRAID_INPUT_CHECK(r.contains(k), "{}: key 'rope_scaling.{}' is missing (rope type llama3)", origin, k);
        o.rope_low_freq_factor = get_num(r, "low_freq_factor", where, 0);
        o.rope_high_freq_factor = get_num(r, "high_freq_factor", where, 0);
        o.rope_original_max_seq = get_int(r, "original_max_position_embeddings", where);
      }
    } else {
      BRAID_INPUT_CHECK(rt == "default", "{}: key '{}' is '{}'; braid supports rope scaling linear and llama3", origin,
                        tkey, rt);
    }
  }
  // the same checks a recipe gets, with config.json's names in the message
  try {
    o.check(origin, "");
  } catch (const InputError& e) {
    input_error("{} (config.json keys: hidden_size -> dim, num_hidden_layers -> layers, num_attention_heads -> heads, "
                "num_key_value_heads -> kv_heads, intermediate_size -> hidden, rms_norm_eps -> norm_eps, "
                "max_position_embeddings -> max_seq, rope_scaling.factor -> rope_factor)", e.what());
  }
  return o;
}

json hf_lm_config(const nn::lm::LMOptions& o) {
  const bool qwen = o.attention_bias;
  BRAID_INPUT_CHECK(!(qwen && !o.rope_scaling.empty()),
                    "export: an LM with attention_bias is a Qwen2ForCausalLM, whose config has no rope_scaling "
                    "(this one has rope_scaling '{}')", o.rope_scaling);
  json c = {{"architectures", {qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
            {"model_type", qwen ? "qwen2" : "llama"},
            {"vocab_size", o.vocab_size},
            {"hidden_size", o.dim},
            {"num_hidden_layers", o.layers},
            {"num_attention_heads", o.heads},
            {"num_key_value_heads", o.kv_heads},
            {"intermediate_size", o.hidden},
            {"hidden_act", "silu"},
            {"rope_theta", o.rope_theta},
            {"rms_norm_eps", o.norm_eps},
            {"max_position_embeddings", o.max_seq},
            {"tie_word_embeddings", o.tie_embeddings},
            {"initializer_range", 0.02},
            {"torch_dtype", "float32"},
            {"use_cache", true}};
  if (qwen) {
    c["use_sliding_window"] = false;
  } else {
    c["attention_bias"] = false;
    c["mlp_bias"] = false;
    c["pretraining_tp"] = 1;
  }
  if (o.rope_scaling == "linear") {
    c["rope_scaling"] = {{"type", "linear"}, {"factor", o.rope_factor}};
  } else if (o.rope_scaling == "llama3") {
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", o.rope_factor},
                         {"low_freq_factor", o.rope_low_freq_factor},
                         {"high_freq_factor", o.rope_high_freq_factor},
                         {"original_max_position_embeddings", o.rope_original_max_seq}};
  } else {
    c["rope_scaling"] = nullptr;
  }
  return c;
}

void load_hf_lm_tensors(nn::lm::CausalLM& lm, TensorMap t, const std::string& source) {
  for (auto it = t.begin(); it != t.end();) {
    const auto& n = it->first;
    if (n.size() > 8 && n.compare(n.size() - 8, 8, "inv_freq") == 0) it = t.erase(it);
    else ++it;
  }
  if (lm->options.tie_embeddings) {
    auto head = t.find("lm_head.weight");
    auto emb = t.find("model.embed_tokens.weight");
    if (head != t.end()) {
      BRAID_INPUT_CHECK(emb != t.end() && head->second.sizes() == emb->second.sizes() &&
                            torch::equal(head->second, emb->second),
                        "{}: tensor 'lm_head.weight' differs from model.embed_tokens.weight, but the config says "
                        "tie_word_embeddings: true", source);
      t.erase(head);
    }
  }
  load_module_tensors(*lm, t, source);
}

nn::lm::CausalLM load_hf_lm(const std::string& dir) {
  auto ck = open_hf_checkpoint(dir);
  BRAID_INPUT_CHECK(!ck.config_path.empty(), "{}: no config.json (a Hugging Face model folder)", dir);
  auto o = hf_lm_options(ck.config, ck.config_path);
  nn::lm::CausalLM lm(o);
  load_hf_lm_tensors(lm, std::move(ck.tensors), ck.source);
  lm->eval();
  return lm;
}

nlohmann::json import_hf_lm(const HfCheckpoint& ck, const std::string& out_dir) {
  namespace fs = std::filesystem;
  BRAID_INPUT_CHECK(!ck.config_path.empty(), "{}: no config.json (a Hugging Face model folder)", ck.source);
  const auto o = hf_lm_options(ck.config, ck.config_path);
  nn::lm::CausalLM lm(o);
  load_hf_lm_tensors(lm, ck.tensors, ck.source);
  const std::string tok = (fs::path(ck.dir) / "tokenizer.json").string();
  BRAID_INPUT_CHECK(file_exists(tok), "{}: no tokenizer.json in the checkpoint folder (braid reads and writes text "
                    "with the checkpoint's own tokenizer)", ck.dir);

  const int64_t tok_vocab = data::Tokenizer::load(tok).vocab_size();
  BRAID_INPUT_CHECK(tok_vocab <= o.vocab_size, "{}: the tokenizer has {} tokens but config.json key 'vocab_size' is {} "
                    "(ids past the embedding)", tok, tok_vocab, o.vocab_size);

  const RunDir rd(out_dir);
  BRAID_INPUT_CHECK(!rd.is_run(), "{}: already a braid run ({} exists); pick another --out or remove it", out_dir,
                    rd.recipe());
  make_dirs(out_dir);
  std::string lmc = fmt::format(
      "{{vocab_size: {}, dim: {}, layers: {}, heads: {}, kv_heads: {}, hidden: {}, rope_theta: {}, norm_eps: {}, "
      "max_seq: {}, tie_embeddings: {}, attention_bias: {}",
      o.vocab_size, o.dim, o.layers, o.heads, o.kv_heads, o.hidden, fmt::format("{:.17g}", o.rope_theta),
      fmt::format("{:.17g}", o.norm_eps), o.max_seq, o.tie_embeddings ? "true" : "false",
      o.attention_bias ? "true" : "false");
  if (!o.rope_scaling.empty())
    lmc += fmt::format(", rope_scaling: {}, rope_factor: {:.17g}, rope_low_freq_factor: {:.17g}, "
                       "rope_high_freq_factor: {:.17g}, rope_original_max_seq: {}",
                       o.rope_scaling, o.rope_factor, o.rope_low_freq_factor, o.rope_high_freq_factor,
                       o.rope_original_max_seq);
  lmc += "}";
  const std::string recipe = fmt::format(
      "# imported by `braid import hf {}` (docs/weights.md): the checkpoint's causal LM as a braid run.\n"
      "# braid generate RUN --text \"...\" continues text; braid export RUN --out DIR writes it back.\n"
      "task: generate\nseed: 0\nthreads: 0\ndevice: cpu\n"
      "data:\n  text: {{view: \"\", max_tokens: {}}}\n"
      "model:\n  name: lm\n  modalities: [text]\n  lm: {}\n",
      ck.source, o.max_seq, lmc);
  atomic_write_text(rd.recipe(), recipe);
  atomic_write_text(rd.tokenizer_as(tok), read_text_file(tok));

  // the weights under the names the recipe's model has ("lm." + Hugging Face's)
  torch::nn::Module holder;
  holder.register_module("lm", lm);
  save_weights(holder, rd.model());

  nlohmann::json imported = {{"format", "huggingface"},
                             {"source", fs::absolute(ck.source).lexically_normal().string()},
                             {"model_type", ck.config.value("model_type", "")},
                             {"architectures", ck.config.value("architectures", nlohmann::json::array())},
                             {"config_sha256", file_sha256(ck.config_path)},
                             {"weight_files", nlohmann::json::array()},
                             {"tokenizer", "tokenizer.json"}};
  for (const auto& f : ck.weight_files) imported["weight_files"].push_back(fs::path(f).filename().string());
  nlohmann::json facts = {{"task", "generate"},
                          {"modalities", {"text"}},
                          {"outputs", 0},
                          {"braid_version", BRAID_VERSION},
                          {"imported", imported}};
  atomic_write_text(rd.facts(), facts.dump(1) + "\n");
  spdlog::info("imported {} LM tensors ({} layers, dim {}, {} heads / {} kv heads{}) from {} into {}",
               ck.tensors.size(), o.layers, o.dim, o.heads, o.kv_heads,
               o.rope_scaling.empty() ? "" : ", rope " + o.rope_scaling, ck.source, out_dir);
  return facts;
}

}  // namespace braid::run
