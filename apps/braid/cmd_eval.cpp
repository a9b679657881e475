// braid eval RUN --data MANIFEST [--split test] [--task retrieval|zeroshot|probe|cmg] [--text-view V] [--json]
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/eval/cmg.h"
#include "braid/eval/pipeline.h"
#include "braid/eval/rerank.h"
#include "braid/eval/zeroshot.h"
#include "braid/train/checkpoint.h"
#include "commands.h"

namespace braid::cli {

void print_metrics(const std::string& title, const nlohmann::json& m) {
  fmt::print("{}\n", title);
  for (auto& [k, v] : m.items()) {
    if (k == "per_class" || k == "ccc_per_dim") continue;
    if ((k == "retrieval" || k == "zeroshot" || k == "probe" || k == "rerank_itm") && v.is_object()) {
      fmt::print("  {}:\n", k);
      for (auto& [name, r] : v.items()) {
        std::string line;
        for (const char* f : {"r1", "r5", "r10", "median_rank", "top1", "top5", "train_top1", "n"})
          if (r.contains(f))
            line += r[f].is_number_float() ? fmt::format("  {} {:.4f}", f, r[f].get<double>())
                                           : fmt::format("  {} {}", f, r[f].dump());
        fmt::print("    {:<16}{}\n", name, line);
      }
      continue;
    }
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
  std::string run, data, split = "test", weights = "model";
  int64_t cmg_epochs = 300;            // cmg: training steps of each A->B head
  bool json = false;
  int threads = 0;
  std::string device;
  std::string task;                    // retrieval | zeroshot | probe | cmg (align runs); "" = the run's own metrics
  std::string text_view;               // read this text view (e.g. zh) instead of the run's
  std::vector<std::string> templates;  // zero-shot prompt templates ("{}" = class name)
  std::string classes = "auto";        // zeroshot / probe label set: run | data | auto
  int64_t rerank_k = 16;               // single tower: ITC top-k re-ranked by ITM
};

// A finished run's pipeline with the chosen weights (model = final, best, or a file) on `device` ("" = the run's).
static eval::Pipeline open_run(const std::string& run, const std::string& weights, const std::string& device) {
  auto p = eval::open_pipeline(run);
  if (!device.empty()) {
    p.device = eval::parse_device(device);
    p.model->to(p.device);
  }
  if (weights == "last") {  // the weights after the last step, from the resume checkpoint
    const std::string ck = run + "/checkpoints/last.pt";
    BRAID_INPUT_CHECK(file_exists(ck), "{}: no checkpoint at {}", run, ck);
    train::load_checkpoint_weights(*p.model, ck);
    return p;
  }
  std::string wpath = weights == "model" ? run + "/model.pt" : weights == "best" ? run + "/checkpoints/best.pt" : weights;
  BRAID_INPUT_CHECK(file_exists(wpath), "{}: no weights at {} (did training finish? try --weights last)", run, wpath);
  train::load_weights(*p.model, wpath);
  return p;
}

// Alignment evaluations of a run (`--task`, `--text-view`).
static nlohmann::json evaluate_align_run(const EvalArgs& a) {
  auto p = open_run(a.run, a.weights, a.device);
  BRAID_INPUT_CHECK(a.task.empty() || p.task == eval::Task::Align,
                    "--task {}: only runs trained with task: align have retrieval, zero-shot and probe evaluations",
                    a.task);
  if (!a.text_view.empty()) eval::set_text_view(p, a.text_view);
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(a.data));
  BRAID_INPUT_CHECK(!m->split_indices(a.split).empty(), "{}: no samples in split '{}'", a.data, a.split);
  // Zero-shot and probes on another label set (emoji subgroups, Fashion-MNIST, the user's own):
  // the classes are the labels of the evaluated split instead of the run's classes.json.
  std::string class_source = "run";
  if (a.task == "zeroshot" || a.task == "probe") {
    BRAID_INPUT_CHECK(a.classes == "auto" || a.classes == "run" || a.classes == "data",
                      "--classes '{}': expected run, data or auto", a.classes);
    const auto split = m->split_indices(a.split);
    const bool known = p.classes && std::all_of(split.begin(), split.end(), [&](int64_t i) {
      const auto& label = m->samples()[i].label;
      const auto& names = p.classes->names();
      return !label || std::find(names.begin(), names.end(), *label) != names.end();
    });
    BRAID_INPUT_CHECK(known || a.classes != "run", "--classes run: {} split '{}' has labels the run was not trained on",
                      a.data, a.split);
    if (a.classes == "data" || !known) {
      // a probe learns its classes on the train split; zero-shot names those of the evaluated split
      const std::string from = a.task == "probe" ? p.recipe.at("data").get<std::string>("train_split", "train") : a.split;
      p.classes = std::make_shared<data::ClassMap>(data::ClassMap::from_manifest(*m, from));
      class_source = "data";
      spdlog::info("classes: the {} labels of {} split '{}'", p.classes->size(), a.data, from);
    }
  }
  auto loader = p.loader(m, a.split, false);
  nlohmann::json res;
  if (a.task.empty() || a.task == "retrieval") {
    res = eval::evaluate(p, *loader, "eval " + a.split);
    if (p.task == eval::Task::Align && p.recipe.at("model").get<std::string>("name", "") == "single_tower") {
      res["rerank_itm"] = eval::evaluate_itm_rerank(p, *loader, a.rerank_k);
    }
  } else if (a.task == "zeroshot") {
    res = eval::evaluate_zeroshot(p, *loader, a.templates.empty() ? eval::default_templates() : a.templates);
    res["class_source"] = class_source;
  } else if (a.task == "probe") {
    const std::string train_split = p.recipe.at("data").get<std::string>("train_split", "train");
    auto tl = p.loader(m, train_split, false);
    res = eval::evaluate_probe(p, *tl, *loader);
    res["class_source"] = class_source;
    res["train_split"] = train_split;
  } else {
    input_error("--task '{}': expected retrieval, zeroshot, probe or cmg", a.task);
  }
  if (p.task == eval::Task::Align) res["task"] = a.task.empty() ? "retrieval" : a.task;
  if (!a.text_view.empty()) res["text_view"] = a.text_view;
  res["split"] = a.split;
  res["run"] = a.run;
  return res;
}

// Evaluate a run's weights on a split of a manifest; shared by `braid eval` and quickstart.
nlohmann::json evaluate_run(const std::string& run, const std::string& manifest_path, const std::string& split,
                            const std::string& weights, const std::string& device) {
  auto p = open_run(run, weights, device);
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
  auto p = open_run(run, weights, device);
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
  e->add_option("--weights", a->weights, "model (the run's final model), best, last (the weights after the last step, from "
                 "checkpoints/last.pt), or a weights file path")->capture_default_str();
  e->add_option("--threads", a->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  e->add_option("--device", a->device, "cpu, cuda or cuda:N (default: the run's device)");
  e->add_option("--task", a->task,
                 "align runs: retrieval (default), zeroshot, probe, or cmg (cross-modal generalization, docs/unicode.md)");
  e->add_option("--text-view", a->text_view, "read this text view of the samples (e.g. zh: cross-lingual retrieval)");
  e->add_option("--template", a->templates, "zero-shot prompt template, '{}' = class name (repeatable)");
  e->add_option("--classes", a->classes,
                 "zeroshot/probe label set: run (classes.json), data (the evaluated split's labels), or auto "
                 "(data when the split has labels the run never saw)")->capture_default_str();
  e->add_option("--rerank-k", a->rerank_k, "single-tower runs: re-rank the ITC top k by the ITM head")
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
    auto m = evaluate_align_run(*a);
    print_metrics(fmt::format("{} on {} ({})", a->run, a->data, a->split), m);
    if (a->json) fmt::print("{}\n", m.dump());
    return 0;
  });
}

}  // namespace braid::cli
