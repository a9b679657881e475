// braid eval RUN --data MANIFEST [--split test] [--task default|cmg] [--json]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/eval/cmg.h"
#include "braid/eval/pipeline.h"
#include "braid/train/checkpoint.h"
#include "commands.h"

namespace braid::cli {

void print_metrics(const std::string& title, const nlohmann::json& m) {
  fmt::print("{}\n", title);
  for (auto& [k, v] : m.items()) {
    if (k == "per_class" || k == "ccc_per_dim") continue;
    if (v.is_number_float())
      fmt::print("  {:<14} {:.4f}\n", k, v.get<double>());
    else
      fmt::print("  {:<14} {}\n", k, v.dump());
  }
  if (m.contains("per_class")) {
    fmt::print("  per-class recall:\n");
    for (auto& [k, v] : m["per_class"].items())
      fmt::print("    {:<28} {:.3f}  (n={})\n", k, v["recall"].get<double>(), v["n"].get<int64_t>());
  }
}

struct EvalArgs {
  std::string run, data, split = "test", weights = "model", task = "default";
  int64_t cmg_epochs = 300;
  bool json = false;
  int threads = 0;
  std::string device;
};

// Evaluate a run's weights on a split of a manifest; shared by `braid eval` and quickstart.
nlohmann::json evaluate_run(const std::string& run, const std::string& manifest_path, const std::string& split,
                            const std::string& weights, const std::string& device) {
  auto p = eval::open_pipeline(run);
  if (!device.empty()) {
    p.device = eval::parse_device(device);
    p.model->to(p.device);
  }
  std::string wpath = weights == "model" ? run + "/model.pt" : weights == "best" ? run + "/checkpoints/best.pt" : weights;
  BRAID_INPUT_CHECK(file_exists(wpath), "{}: no weights at {} (did training finish? try --weights last)", run, wpath);
  train::load_weights(*p.model, wpath);
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(manifest_path));
  BRAID_INPUT_CHECK(!m->split_indices(split).empty(), "{}: no samples in split '{}'", manifest_path, split);
  auto loader = p.loader(m, split, false);
  auto res = eval::evaluate(p, *loader, "eval " + split);
  res["split"] = split;
  res["run"] = run;
  return res;
}

// Cross-modal generalization of a run (eval/cmg.h): heads trained on the train split, tested on `split`.
nlohmann::json evaluate_cmg_run(const std::string& run, const std::string& manifest_path, const std::string& split,
                                const std::string& weights, const std::string& device, int64_t epochs) {
  auto p = eval::open_pipeline(run);
  if (!device.empty()) {
    p.device = eval::parse_device(device);
    p.model->to(p.device);
  }
  std::string wpath = weights == "model" ? run + "/model.pt" : weights == "best" ? run + "/checkpoints/best.pt" : weights;
  BRAID_INPUT_CHECK(file_exists(wpath), "{}: no weights at {} (did training finish? try --weights last)", run, wpath);
  train::load_weights(*p.model, wpath);
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(manifest_path));
  eval::CmgOptions o;
  o.test_split = split;
  o.epochs = epochs;
  auto res = eval::evaluate_cmg(p, m, o);
  res["run"] = run;
  return res;
}

void add_eval_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<EvalArgs>();
  auto* e = app.add_subcommand("eval", "evaluate a trained run on a manifest split");
  e->add_option("run", a->run, "run directory written by `braid train`")->required();
  e->add_option("--data", a->data, "manifest JSONL")->required();
  e->add_option("--split", a->split, "split to evaluate (train, val, test)")->capture_default_str();
  e->add_option("--weights", a->weights, "model (final), best, or a weights file path")->capture_default_str();
  e->add_option("--threads", a->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  e->add_option("--device", a->device, "cpu, cuda or cuda:N (default: the run's device)");
  e->add_option("--task", a->task, "default (the run's own metrics) | cmg (cross-modal generalization, see docs/unicode.md)")
      ->check(CLI::IsMember({"default", "cmg"}))
      ->capture_default_str();
  e->add_option("--cmg-epochs", a->cmg_epochs, "cmg: full-batch training steps of each A->B head")->capture_default_str();
  e->add_flag("--json", a->json, "print one JSON object of metrics as the last line of stdout");
  out.emplace_back(e, [a] {
    configure_threads(a->threads);
    if (a->task == "cmg") {
      auto m = evaluate_cmg_run(a->run, a->data, a->split, a->weights, a->device, a->cmg_epochs);
      fmt::print("{}", eval::format_cmg(m));
      if (a->json) fmt::print("{}\n", m.dump());
      return 0;
    }
    auto m = evaluate_run(a->run, a->data, a->split, a->weights, a->device);
    print_metrics(fmt::format("{} on {} ({})", a->run, a->data, a->split), m);
    if (a->json) fmt::print("{}\n", m.dump());
    return 0;
  });
}

}  // namespace braid::cli
