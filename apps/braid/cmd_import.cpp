// braid import hf DIR --out RUN: a Hugging Face checkpoint folder (or one .safetensors file with its
// config.json) as a braid run directory (docs/weights.md). The architecture is picked by config.json
// "model_type" from the table below: one row per supported architecture.
#include <fmt/format.h>

#include <functional>
#include <string>
#include <vector>

#include "braid/core/error.h"
#include "braid/run/hf_bert.h"
#include "braid/run/hf_checkpoint.h"
#include "braid/run/hf_lm.h"
#include "braid/run/hf_clip.h"
#include "commands.h"

namespace braid::cli {

namespace {

struct ImportArgs {
  std::string src, out, model_config, tokenizer;
};

// One architecture braid imports from a Hugging Face folder: config.json "model_type" -> the importer
// that writes the run directory and returns its facts (run.json).
struct HfImporter {
  std::string model_type;
  std::string doc;
  std::function<nlohmann::json(const run::HfCheckpoint&, const std::string& out)> import;
};

const std::vector<HfImporter>& hf_importers() {
  static const std::vector<HfImporter> table = {
      {"bert", "BERT text encoder, sentence-transformers pooling/normalize (all-MiniLM-L6-v2, ...); run/hf_bert.h",
       run::import_hf_bert},
      {"llama", "LlamaForCausalLM (Llama, SmolLM2, TinyLlama; rope_scaling linear/llama3) as a model 'lm' run; run/hf_lm.h",
       run::import_hf_lm},
      {"qwen2", "Qwen2ForCausalLM (q/k/v biases) as a model 'lm' run; run/hf_lm.h", run::import_hf_lm},
      {"clip", "CLIPModel image + text towers, projections, logit scale, image processor; run/hf_clip.h",
       run::import_hf_clip},
      {"siglip", "SiglipModel image + text towers (attention-pooling head), logit scale and bias; run/hf_clip.h",
       run::import_hf_clip},
  };
  return table;
}

std::string known_types() {
  std::string s;
  for (const auto& i : hf_importers()) s += (s.empty() ? "" : ", ") + i.model_type;
  return s;
}

}  // namespace

void add_import_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto* imp = app.add_subcommand("import", "bring your own weights: a checkpoint as a braid run (docs/weights.md)");
  imp->require_subcommand(1);
  auto a = std::make_shared<ImportArgs>();
  auto* hf = imp->add_subcommand(
      "hf", "a Hugging Face folder (config.json + model.safetensors or a sharded index, its tokenizer) as a run; "
            "the architecture by config.json model_type: " + known_types());
  hf->add_option("dir", a->src, "checkpoint folder, or one .safetensors file beside its config.json")->required();
  hf->add_option("--out", a->out, "run directory to write (must not be a run already)")->required();
  out.emplace_back(hf, [a] {
    auto ck = run::open_hf_checkpoint(a->src);
    BRAID_INPUT_CHECK(!ck.config_path.empty(), "{}: no config.json beside the weights (its model_type picks the "
                      "architecture: {})", a->src, known_types());
    const std::string mt = run::hf_string(ck, "model_type", "");
    for (const auto& i : hf_importers()) {
      if (i.model_type != mt) continue;
      auto facts = i.import(ck, a->out);
      fmt::print("imported {} ({} tensors from {}) into {}\n", mt, ck.tensors.size(), a->src, a->out);
      return 0;
    }
    input_error("{}: key \"model_type\" is '{}'; braid imports {} (docs/weights.md)", ck.config_path, mt, known_types());
  });

  auto o = std::make_shared<ImportArgs>();
  auto* oc = imp->add_subcommand("openclip", "an OpenCLIP ViT state dict saved as .safetensors (visual.conv1.weight, "
                                             "..., text_projection, logit_scale) as a CLIP run (docs/weights_clip.md)");
  oc->add_option("file", o->src, "the state dict (.safetensors)")->required();
  oc->add_option("--model-config", o->model_config,
                 "its open_clip model config JSON (embed_dim, vision_cfg, text_cfg, quick_gelu)")->required();
  oc->add_option("--tokenizer", o->tokenizer, "tokenizer.json of the model (the CLIP BPE)")->required();
  oc->add_option("--out", o->out, "run directory to write (must not be a run already)")->required();
  out.emplace_back(oc, [o] {
    run::import_openclip(o->src, o->model_config, o->tokenizer, o->out);
    fmt::print("imported openclip ({}) into {}\n", o->src, o->out);
    return 0;
  });
}

}  // namespace braid::cli
