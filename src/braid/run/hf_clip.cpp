#include "braid/run/hf_clip.h"

#include <torch/torch.h>

#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/tokenizer.h"
#include "braid/run/pipeline.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"

namespace braid::run {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<double> kOpenAIMean{0.48145466, 0.4578275, 0.40821073};
const std::vector<double> kOpenAIStd{0.26862954, 0.26130258, 0.27577711};

// The options of one tower (nn/encoders/hf_clip.h HFClipOptions) as read from a config.
struct Tower {
  std::string variant, act, pool = "eos";
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, projection_dim = 0;
  double eps = 1e-5;
  int64_t image_size = 0, patch = 0;                            // vision
  int64_t vocab = 0, max_positions = 0, eos_id = 0, pad_id = 1;  // text
};

struct Image {
  int64_t size = 224, resize_size = 0;
  std::string resize = "shortest";
  std::vector<double> mean = kOpenAIMean, std = kOpenAIStd;
};

std::string yaml_list(const std::vector<double>& v) {
  std::vector<std::string> s;
  for (double x : v) s.push_back(fmt::format("{:.9g}", x));
  return "[" + fmt::format("{}", fmt::join(s, ", ")) + "]";
}

std::string tower_yaml(const char* name, const Tower& t, bool vision) {
  std::string y = fmt::format("{{name: {}, variant: {}, hidden: {}, intermediate: {}, layers: {}, heads: {}, act: {}, "
                              "eps: {:.9g}, projection_dim: {}",
                              name, t.variant, t.hidden, t.intermediate, t.layers, t.heads, t.act, t.eps,
                              t.projection_dim);
  if (vision)
    y += fmt::format(", image_size: {}, patch: {}}}", t.image_size, t.patch);
  else
    y += fmt::format(", vocab: {}, max_positions: {}, pool: {}, eos_id: {}, pad_id: {}}}", t.vocab, t.max_positions,
                     t.pool, t.eos_id, t.pad_id);
  return y;
}

std::string recipe_yaml(const std::string& kind, const Tower& v, const Tower& t, int64_t embed_dim, const Image& im) {
  std::string y;
  y += fmt::format("# imported by `braid import` ({}; docs/weights.md): the towers are nn/encoders/hf_clip.h and the\n"
                   "# image preprocessing that of the checkpoint's image processor.\n", kind);
  y += "task: align\nseed: 0\nthreads: 0\ndevice: cpu\n";
  y += "data:\n";
  y += fmt::format("  image: {{size: {}, resize: {}, resize_size: {}, filter: bicubic, mean: {}, std: {}}}\n", im.size,
                   im.resize, im.resize_size, yaml_list(im.mean), yaml_list(im.std));
  y += fmt::format("  text: {{max_tokens: {}}}\n", t.max_positions);
  y += "model:\n  name: dual_tower\n  modalities: [image, text]\n  encoders:\n";
  y += "    image: " + tower_yaml("hf_clip_vision", v, true) + "\n";
  y += "    text: " + tower_yaml("hf_clip_text", t, false) + "\n";
  y += fmt::format("  embed_dim: {}\n  projection: {{identity: true}}\n  loss: {}\n", embed_dim,
                   v.variant == "siglip" ? "siglip" : "clip");
  return y;
}

void check_act(const std::string& act, const std::string& where) {
  BRAID_INPUT_CHECK(act == "quick_gelu" || act == "gelu" || act == "gelu_pytorch_tanh",
                    "{}: hidden_act '{}' is not supported (expected quick_gelu, gelu or gelu_pytorch_tanh)", where, act);
}

// One tower's options from an HF sub-config (text_config / vision_config) with the model type's defaults.
Tower hf_tower(const json& c, const std::string& where, bool siglip, bool vision) {
  Tower t;
  t.variant = siglip ? "siglip" : "clip";
  t.hidden = json_int(c, "hidden_size", vision || siglip ? 768 : 512, where);
  t.intermediate = json_int(c, "intermediate_size", vision || siglip ? 3072 : 2048, where);
  t.layers = json_int(c, "num_hidden_layers", 12, where);
  t.heads = json_int(c, "num_attention_heads", vision || siglip ? 12 : 8, where);
  t.act = json_string(c, "hidden_act", siglip ? "gelu_pytorch_tanh" : "quick_gelu", where);
  check_act(t.act, where + " key 'hidden_act'");
  t.eps = json_float(c, "layer_norm_eps", siglip ? 1e-6 : 1e-5, where);
  BRAID_INPUT_CHECK(t.hidden > 0 && t.heads > 0 && t.hidden % t.heads == 0 && t.layers > 0 && t.intermediate > 0,
                    "{}: hidden_size {} must be a positive multiple of num_attention_heads {}, and num_hidden_layers, "
                    "intermediate_size positive",
                    where, t.hidden, t.heads);
  if (vision) {
    t.image_size = json_int(c, "image_size", 224, where);
    t.patch = json_int(c, "patch_size", siglip ? 16 : 32, where);
    BRAID_INPUT_CHECK(json_int(c, "num_channels", 3, where) == 3, "{}: num_channels must be 3", where);
    BRAID_INPUT_CHECK(t.patch > 0 && t.image_size >= t.patch, "{}: patch_size {} and image_size {}: expected 0 < patch "
                      "<= image", where, t.patch, t.image_size);
    if (c.contains("vision_use_head"))
      BRAID_INPUT_CHECK(c["vision_use_head"].is_boolean() && c["vision_use_head"].get<bool>(),
                        "{}: key 'vision_use_head': only the attention-pooling head (true) is supported", where);
  } else {
    t.vocab = json_int(c, "vocab_size", siglip ? 32000 : 49408, where);
    t.max_positions = json_int(c, "max_position_embeddings", siglip ? 64 : 77, where);
    t.eos_id = json_int(c, "eos_token_id", 49407, where);
    t.pad_id = json_int(c, "pad_token_id", 1, where);
    t.pool = t.eos_id == 2 ? "argmax" : "eos";  // transformers 4.40 CLIPTextTransformer: eos_token_id == 2 = legacy
    BRAID_INPUT_CHECK(t.vocab > 0 && t.max_positions > 0, "{}: vocab_size and max_position_embeddings must be positive",
                      where);
    BRAID_INPUT_CHECK(!siglip || (t.pad_id >= 0 && t.pad_id < t.vocab), "{}: pad_token_id {} outside the vocabulary",
                      where, t.pad_id);
  }
  return t;
}

std::vector<double> three(const json& j, const std::string& key, const std::vector<double>& def, const std::string& where) {
  if (!j.contains(key)) return def;
  const auto& v = j[key];
  BRAID_INPUT_CHECK(v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() && v[2].is_number(),
                    "{}: key '{}': expected 3 numbers", where, key);
  return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>()};
}

// data.image from preprocessor_config.json (CLIPImageProcessor / SiglipImageProcessor).
Image hf_image(const std::string& dir, bool siglip, int64_t image_size) {
  Image im;
  im.size = image_size;
  im.resize = siglip ? "square" : "shortest";
  im.resize_size = siglip ? 0 : image_size;
  if (siglip) im.mean = im.std = {0.5, 0.5, 0.5};
  const std::string p = dir + "/preprocessor_config.json";
  if (!file_exists(p)) {
    spdlog::warn("{}: no preprocessor_config.json; using the {} image processor's defaults", dir, siglip ? "SigLIP" : "CLIP");
    return im;
  }
  const json j = read_json_file(p);
  BRAID_INPUT_CHECK(j.is_object(), "{}: expected a JSON object", p);
  auto flag = [&](const char* k) {
    if (!j.contains(k)) return true;
    BRAID_INPUT_CHECK(j[k].is_boolean(), "{}: key '{}': expected true or false", p, k);
    return j[k].get<bool>();
  };
  BRAID_INPUT_CHECK(flag("do_resize"), "{}: key 'do_resize' false is not supported (braid always resizes)", p);
  BRAID_INPUT_CHECK(flag("do_rescale") && std::abs(json_float(j, "rescale_factor", 1.0 / 255, p) - 1.0 / 255) < 1e-9,
                    "{}: keys 'do_rescale'/'rescale_factor': only rescaling by 1/255 is supported", p);
  BRAID_INPUT_CHECK(json_int(j, "resample", 3, p) == 3, "{}: key 'resample' {}: only 3 (bicubic) is supported", p,
                    json_int(j, "resample", 3, p));
  if (flag("do_normalize")) {
    im.mean = three(j, "image_mean", im.mean, p);
    im.std = three(j, "image_std", im.std, p);
  } else {
    im.mean = {0, 0, 0};
    im.std = {1, 1, 1};
  }
  for (double s : im.std) BRAID_INPUT_CHECK(s > 0, "{}: key 'image_std': values must be positive", p);
  const json size = j.value("size", json::object());
  BRAID_INPUT_CHECK(size.is_object() || size.is_number_integer(), "{}: key 'size': expected an object or an integer", p);
  if (siglip) {
    const int64_t h = size.is_object() ? json_int(size, "height", image_size, p + " 'size'") : size.get<int64_t>();
    const int64_t w = size.is_object() ? json_int(size, "width", image_size, p + " 'size'") : size.get<int64_t>();
    BRAID_INPUT_CHECK(h == image_size && w == image_size,
                      "{}: key 'size' {}x{}: expected the model's square image_size {}", p, h, w, image_size);
    return im;
  }
  im.resize_size = size.is_object() ? json_int(size, "shortest_edge", image_size, p + " 'size'") : size.get<int64_t>();
  if (flag("do_center_crop")) {
    const json crop = j.value("crop_size", json::object());
    const int64_t ch = crop.is_object() ? json_int(crop, "height", image_size, p + " 'crop_size'") : crop.get<int64_t>();
    const int64_t cw = crop.is_object() ? json_int(crop, "width", image_size, p + " 'crop_size'") : crop.get<int64_t>();
    BRAID_INPUT_CHECK(ch == image_size && cw == image_size,
                      "{}: key 'crop_size' {}x{}: expected the model's square image_size {}", p, ch, cw, image_size);
  } else {
    BRAID_INPUT_CHECK(im.resize_size == image_size, "{}: without a centre crop the shortest edge {} must be image_size {}",
                      p, im.resize_size, image_size);
  }
  BRAID_INPUT_CHECK(im.resize_size >= image_size, "{}: key 'size': shortest_edge {} is smaller than the crop {}", p,
                    im.resize_size, image_size);
  return im;
}

// The dual tower of a recipe, on the CPU (for the name table and the tensors' dtypes).
models::ModelPtr build_model(const std::string& yaml, int64_t vocab, int64_t image_size) {
  auto recipe = Config::from_string(yaml, "<imported recipe>");
  models::ModelContext ctx;
  ctx.modalities = {"image", "text"};
  ctx.task = models::Task::Align;
  for (const auto& m : ctx.modalities) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = vocab;
    e.image_size = image_size;
    ctx.encoders[m] = e;
  }
  auto mcfg = recipe.at("model");
  mcfg.get<std::vector<std::string>>("modalities", ctx.modalities);
  return models::model_registry().make(mcfg, ctx);
}

std::string hf_name(const std::string& b) {
  auto starts = [&](const char* p) { return b.rfind(p, 0) == 0; };
  if (b == "enc_image.projection.weight") return "visual_projection.weight";
  if (b == "enc_text.projection.weight") return "text_projection.weight";
  if (b == "logit_scale") return "logit_scale";
  if (b == "bias") return "logit_bias";
  if (starts("enc_image.")) return "vision_model." + b.substr(10);
  if (starts("enc_text.")) return "text_model." + b.substr(9);
  return b;
}

// Check `hf` (HF names) against the model's own table and rename to braid names in the model's dtypes.
TensorMap to_braid(const TensorMap& hf, const models::ModelPtr& model, const std::string& source) {
  const TensorMap own = module_tensors(*model);
  ShapeTable want;
  for (const auto& [name, t] : own) {
    const std::string h = hf_name(name);
    auto shape = t.sizes().vec();
    // logit_scale / logit_bias: HF CLIP stores a 0-d tensor, SigLIP a [1] one
    if ((h == "logit_scale" || h == "logit_bias") && hf.count(h) && hf.at(h).numel() == 1) shape = hf.at(h).sizes().vec();
    want[h] = shape;
  }
  expect_tensors(hf, want, source,
                 {"vision_model.embeddings.position_ids", "text_model.embeddings.position_ids"});
  TensorMap out;
  for (const auto& [name, t] : own) {
    const auto& src = hf.at(hf_name(name));
    out[name] = src.reshape(t.sizes()).to(t.scalar_type()).contiguous();
  }
  return out;
}

ClipImport finish(const std::string& kind, const Tower& v, const Tower& t, int64_t embed_dim, const Image& im,
                  const TensorMap& hf, const std::string& source) {
  ClipImport out;
  out.kind = kind;
  out.source = source;
  out.recipe_yaml = recipe_yaml(kind, v, t, embed_dim, im);
  auto model = build_model(out.recipe_yaml, t.vocab, v.image_size);
  out.tensors = to_braid(hf, model, source);
  return out;
}

}  // namespace

ClipImport convert_hf_clip(const HfCheckpoint& ck) {
  const std::string where = ck.config_path.empty() ? ck.source + "/config.json" : ck.config_path;
  const std::string type = json_string(ck.config, "model_type", "", where);
  BRAID_INPUT_CHECK(type == "clip" || type == "siglip", "{}: key 'model_type' is '{}'; expected clip or siglip", where,
                    type);
  const bool siglip = type == "siglip";
  auto sub = [&](const char* key) {
    json c = ck.config.value(key, json::object());
    BRAID_INPUT_CHECK(c.is_object(), "{}: key '{}': expected an object", where, key);
    return c;
  };
  Tower v = hf_tower(sub("vision_config"), where + " vision_config", siglip, true);
  Tower t = hf_tower(sub("text_config"), where + " text_config", siglip, false);
  int64_t embed = v.hidden;
  if (!siglip) {
    embed = json_int(ck.config, "projection_dim", 512, where);
    BRAID_INPUT_CHECK(embed > 0, "{}: key 'projection_dim' must be positive", where);
    v.projection_dim = t.projection_dim = embed;
  } else {
    BRAID_INPUT_CHECK(t.hidden == v.hidden, "{}: text_config hidden_size {} differs from vision_config's {}: SigLIP "
                      "compares the pooled outputs directly", where, t.hidden, v.hidden);
  }
  Image im = hf_image(ck.dir, siglip, v.image_size);
  return finish(type, v, t, embed, im, ck.tensors, ck.source);
}

TensorMap openclip_to_hf(const TensorMap& oc, const json& mc, const std::string& source) {
  // names and shapes first, in OpenCLIP's names
  const json vc = mc.at("vision_cfg"), tc = mc.at("text_cfg");
  const int64_t E = mc.at("embed_dim").get<int64_t>();
  const int64_t W = vc.at("width").get<int64_t>(), L = vc.at("layers").get<int64_t>(),
                P = vc.at("patch_size").get<int64_t>(), S = vc.at("image_size").get<int64_t>();
  const int64_t Mv = static_cast<int64_t>(W * vc.value("mlp_ratio", 4.0));
  const int64_t Wt = tc.value("width", int64_t(512)), Lt = tc.value("layers", int64_t(12)),
                C = tc.value("context_length", int64_t(77)), V = tc.value("vocab_size", int64_t(49408));
  const int64_t Mt = static_cast<int64_t>(Wt * tc.value("mlp_ratio", 4.0));
  const int64_t N = (S / P) * (S / P);
  ShapeTable want;
  auto blocks = [&](const std::string& pre, int64_t layers, int64_t w, int64_t m) {
    for (int64_t i = 0; i < layers; ++i) {
      const std::string b = fmt::format("{}resblocks.{}.", pre, i);
      for (const char* ln : {"ln_1", "ln_2"}) {
        want[b + ln + ".weight"] = {w};
        want[b + ln + ".bias"] = {w};
      }
      want[b + "attn.in_proj_weight"] = {3 * w, w};
      want[b + "attn.in_proj_bias"] = {3 * w};
      want[b + "attn.out_proj.weight"] = {w, w};
      want[b + "attn.out_proj.bias"] = {w};
      want[b + "mlp.c_fc.weight"] = {m, w};
      want[b + "mlp.c_fc.bias"] = {m};
      want[b + "mlp.c_proj.weight"] = {w, m};
      want[b + "mlp.c_proj.bias"] = {w};
    }
  };
  want["visual.conv1.weight"] = {W, 3, P, P};
  want["visual.class_embedding"] = {W};
  want["visual.positional_embedding"] = {N + 1, W};
  for (const char* ln : {"visual.ln_pre", "visual.ln_post", "ln_final"}) {
    const int64_t w = std::string(ln) == "ln_final" ? Wt : W;
    want[std::string(ln) + ".weight"] = {w};
    want[std::string(ln) + ".bias"] = {w};
  }
  blocks("visual.transformer.", L, W, Mv);
  want["visual.proj"] = {W, E};
  want["token_embedding.weight"] = {V, Wt};
  want["positional_embedding"] = {C, Wt};
  blocks("transformer.", Lt, Wt, Mt);
  want["text_projection"] = {Wt, E};
  want["logit_scale"] = {};
  if (oc.count("logit_scale") && oc.at("logit_scale").numel() == 1) want["logit_scale"] = oc.at("logit_scale").sizes().vec();
  expect_tensors(oc, want, source, {"attn_mask"});

  TensorMap hf;
  auto layers = [&](const std::string& from, const std::string& to, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const std::string a = fmt::format("{}resblocks.{}.", from, i), b = fmt::format("{}encoder.layers.{}.", to, i);
      for (const char* s : {"weight", "bias"}) {
        hf[b + "layer_norm1." + s] = oc.at(a + "ln_1." + s);
        hf[b + "layer_norm2." + s] = oc.at(a + "ln_2." + s);
        auto qkv = oc.at(a + "attn.in_proj_" + s).chunk(3, 0);  // rows: q, k, v
        hf[b + "self_attn.q_proj." + s] = qkv[0].contiguous();
        hf[b + "self_attn.k_proj." + s] = qkv[1].contiguous();
        hf[b + "self_attn.v_proj." + s] = qkv[2].contiguous();
        hf[b + "self_attn.out_proj." + s] = oc.at(a + "attn.out_proj." + s);
        hf[b + "mlp.fc1." + s] = oc.at(a + "mlp.c_fc." + s);
        hf[b + "mlp.fc2." + s] = oc.at(a + "mlp.c_proj." + s);
      }
    }
  };
  hf["vision_model.embeddings.patch_embedding.weight"] = oc.at("visual.conv1.weight");
  hf["vision_model.embeddings.class_embedding"] = oc.at("visual.class_embedding");
  hf["vision_model.embeddings.position_embedding.weight"] = oc.at("visual.positional_embedding");
  for (const char* s : {"weight", "bias"}) {
    hf[std::string("vision_model.pre_layrnorm.") + s] = oc.at(std::string("visual.ln_pre.") + s);
    hf[std::string("vision_model.post_layernorm.") + s] = oc.at(std::string("visual.ln_post.") + s);
    hf[std::string("text_model.final_layer_norm.") + s] = oc.at(std::string("ln_final.") + s);
  }
  layers("visual.transformer.", "vision_model.", L);
  layers("transformer.", "text_model.", Lt);
  hf["visual_projection.weight"] = oc.at("visual.proj").t().contiguous();  // x @ proj = Linear with weight projᵀ
  hf["text_projection.weight"] = oc.at("text_projection").t().contiguous();
  hf["text_model.embeddings.token_embedding.weight"] = oc.at("token_embedding.weight");
  hf["text_model.embeddings.position_embedding.weight"] = oc.at("positional_embedding");
  hf["logit_scale"] = oc.at("logit_scale");
  return hf;
}

ClipImport convert_openclip(const std::string& weights, const std::string& model_config) {
  const json mc = read_json_file(model_config);
  const std::string& mcp = model_config;
  BRAID_INPUT_CHECK(mc.is_object(), "{}: expected a JSON object (open_clip model config)", mcp);
  // Only the plain ViT CLIP of open_clip: every key that changes the architecture is refused by name.
  const std::set<std::string> top{"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"};
  const std::set<std::string> vis{"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"};
  const std::set<std::string> txt{"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"};
  for (const auto& [k, _] : mc.items())
    BRAID_INPUT_CHECK(top.count(k), "{}: key '{}' is not supported (braid imports the plain ViT CLIP: {})", mcp, k,
                      fmt::join(top, ", "));
  BRAID_INPUT_CHECK(mc.contains("vision_cfg") && mc["vision_cfg"].is_object() && mc.contains("text_cfg") &&
                        mc["text_cfg"].is_object(),
                    "{}: keys 'vision_cfg' and 'text_cfg' must be objects", mcp);
  for (const auto& [k, _] : mc["vision_cfg"].items())
    BRAID_INPUT_CHECK(vis.count(k), "{}: key 'vision_cfg.{}' is not supported (supported: {})", mcp, k,
                      fmt::join(vis, ", "));
  for (const auto& [k, _] : mc["text_cfg"].items())
    BRAID_INPUT_CHECK(txt.count(k), "{}: key 'text_cfg.{}' is not supported (supported: {})", mcp, k,
                      fmt::join(txt, ", "));
  const json& vc = mc["vision_cfg"];
  const json& tc = mc["text_cfg"];
  const std::string vw = mcp + " vision_cfg", tw = mcp + " text_cfg";
  BRAID_INPUT_CHECK(!mc.contains("quick_gelu") || mc["quick_gelu"].is_boolean(),
                    "{}: key 'quick_gelu': expected true or false", mcp);
  const bool quick = mc.value("quick_gelu", false);
  Tower v, t;
  v.variant = t.variant = "clip";
  v.act = t.act = quick ? "quick_gelu" : "gelu";
  v.eps = t.eps = 1e-5;
  v.hidden = json_int(vc, "width", vw);
  v.layers = json_int(vc, "layers", vw);
  v.patch = json_int(vc, "patch_size", vw);
  v.image_size = json_int(vc, "image_size", vw);
  const int64_t head_width = json_int(vc, "head_width", 64, vw);
  BRAID_INPUT_CHECK(head_width > 0 && v.hidden > 0 && v.hidden % head_width == 0,
                    "{}: width {} must be a positive multiple of head_width {}", vw, v.hidden, head_width);
  v.heads = v.hidden / head_width;
  v.intermediate = static_cast<int64_t>(v.hidden * json_float(vc, "mlp_ratio", 4.0, vw));
  t.hidden = json_int(tc, "width", 512, tw);
  t.heads = json_int(tc, "heads", 8, tw);
  t.layers = json_int(tc, "layers", 12, tw);
  t.intermediate = static_cast<int64_t>(t.hidden * json_float(tc, "mlp_ratio", 4.0, tw));
  t.vocab = json_int(tc, "vocab_size", 49408, tw);
  t.max_positions = json_int(tc, "context_length", 77, tw);
  t.pool = "argmax";  // open_clip text_global_pool 'argmax': the end-of-text token has the highest id
  t.eos_id = t.vocab - 1;
  const int64_t E = json_int(mc, "embed_dim", mcp);
  BRAID_INPUT_CHECK(E > 0 && v.layers > 0 && t.layers > 0 && v.patch > 0 && v.image_size >= v.patch && t.heads > 0 &&
                        t.hidden % t.heads == 0 && v.intermediate > 0 && t.intermediate > 0,
                    "{}: embed_dim, layers, widths, heads and patch_size must be positive (patch <= image_size, "
                    "text width a multiple of heads)",
                    mcp);
  v.projection_dim = t.projection_dim = E;
  json norm = mc;
  norm["vision_cfg"]["mlp_ratio"] = json_float(vc, "mlp_ratio", 4.0, vw);
  norm["text_cfg"]["width"] = t.hidden;
  norm["text_cfg"]["layers"] = t.layers;
  norm["text_cfg"]["context_length"] = t.max_positions;
  norm["text_cfg"]["vocab_size"] = t.vocab;
  norm["text_cfg"]["mlp_ratio"] = json_float(tc, "mlp_ratio", 4.0, tw);
  const TensorMap oc = read_safetensors(weights);
  TensorMap hf = openclip_to_hf(oc, norm, weights);
  Image im;  // open_clip's image_transform: Resize(image_size, bicubic) + CenterCrop + OpenAI mean/std
  im.size = v.image_size;
  im.resize_size = v.image_size;
  return finish("openclip", v, t, E, im, hf, weights);
}

models::ModelPtr clip_model(const ClipImport& im) {
  auto recipe = Config::from_string(im.recipe_yaml, "<imported recipe>");
  const int64_t vocab = recipe.at("model").at("encoders").at("text").get<int64_t>("vocab", 0);
  const int64_t size = recipe.at("data").at("image").get<int64_t>("size", 0);
  auto model = build_model(im.recipe_yaml, vocab, size);
  load_module_tensors(*model, im.tensors, im.source);
  model->eval();
  return model;
}

std::string find_hf_tokenizer(const std::string& dir) {
  for (const char* f : {"tokenizer.json", "spiece.model", "tokenizer.model"})
    if (file_exists(dir + "/" + f)) return dir + "/" + f;
  return "";
}

nlohmann::json write_clip_run(const ClipImport& im, const std::string& tokenizer, const std::string& out_dir) {
  const RunDir rd(out_dir);
  BRAID_INPUT_CHECK(!rd.is_run(), "{}: already a braid run ({} exists); pick another --out or remove it", out_dir,
                    rd.recipe());
  BRAID_INPUT_CHECK(!tokenizer.empty(), "{}: no tokenizer to read text with (tokenizer.json / spiece.model beside the "
                    "checkpoint, or --tokenizer FILE)", im.source);
  BRAID_INPUT_CHECK(file_exists(tokenizer), "{}: no such tokenizer file", tokenizer);
  {  // before anything is written: the tokenizer's ids must index the text tower's embedding
    const auto recipe = Config::from_string(im.recipe_yaml, "<imported recipe>");
    const int64_t vocab = recipe.at("model").at("encoders").at("text").get<int64_t>("vocab", 0);
    const int64_t n = data::Tokenizer::load(tokenizer).vocab_size();
    BRAID_INPUT_CHECK(n <= vocab, "{}: the tokenizer has {} ids, the model's token embedding only {} ({})", tokenizer, n,
                      vocab, im.source);
  }
  make_dirs(out_dir);
  atomic_write_text(rd.tokenizer_as(tokenizer), read_text_file(tokenizer));
  json imported = {{"format", im.kind == "openclip" ? "openclip" : "huggingface"},
                   {"kind", im.kind},
                   {"source", fs::absolute(im.source).lexically_normal().string()},
                   {"tokenizer", fs::path(tokenizer).filename().string()}};
  if (fs::is_regular_file(im.source)) imported["sha256"] = file_sha256(im.source);
  json facts = {{"task", "align"},
                {"modalities", {"image", "text"}},
                {"outputs", 0},
                {"braid_version", BRAID_VERSION},
                {"imported", imported}};
  atomic_write_text(rd.facts(), facts.dump(1) + "\n");
  atomic_write_text(rd.recipe(), im.recipe_yaml);  // last: a directory with a recipe is a run
  Pipeline p = open_pipeline(out_dir);
  load_module_tensors(*p.model, im.tensors, im.source);
  save_weights(*p.model, rd.model());
  spdlog::info("imported {} ({} tensors) from {} into {}", im.kind, im.tensors.size(), im.source, out_dir);
  return facts;
}

nlohmann::json import_hf_clip(const HfCheckpoint& ck, const std::string& out_dir) {
  return write_clip_run(convert_hf_clip(ck), find_hf_tokenizer(ck.dir), out_dir);
}

nlohmann::json import_openclip(const std::string& weights, const std::string& model_config,
                               const std::string& tokenizer, const std::string& out_dir) {
  return write_clip_run(convert_openclip(weights, model_config), tokenizer, out_dir);
}

}  // namespace braid::run
