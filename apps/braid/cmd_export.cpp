// braid export RUN --out DIR [--weights model]: a run's weights as safetensors (+ the Hugging Face layout of
// its LM), for PyTorch and transformers (run/export.h).
#include <fmt/format.h>

#include "braid/run/export.h"
#include "braid/run/run_dir.h"
#include "commands.h"

namespace braid::cli {

namespace {
struct ExportArgs {
  std::string run, out, weights = "model";
};
}  // namespace

void add_export_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<ExportArgs>();
  auto* c = app.add_subcommand("export", "write a run's weights as DIR/model.safetensors + DIR/braid_config.json, and "
                                         "a model with a Llama-family LM also as a Hugging Face folder DIR/hf "
                                         "(config.json + model.safetensors for transformers' from_pretrained)");
  c->add_option("run", a->run, "run directory")->required();
  c->add_option("--out", a->out, "output directory (created)")->required();
  c->add_option("--weights", a->weights, run::weights_help())->capture_default_str();
  out.emplace_back(c, [a] {
    auto r = run::export_run(a->run, a->out, a->weights);
    for (const auto& f : r.files) fmt::print("{}\n", f);
    fmt::print(stderr, "exported {} tensors{}\n", r.tensors, r.hf.empty() ? "" : fmt::format("; hf/: {}", r.hf));
    return 0;
  });
}

}  // namespace braid::cli
