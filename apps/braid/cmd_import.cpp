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
#include "commands.h"

namespace braid::cli {

namespace {

struct ImportArgs {
  std::string src, out;
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
      // llama / qwen2 (run/hf_lm.h) and clip / siglip (run/hf_clip.h): one row each
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
}

}  // namespace braid::cli
