// braid eval RUN --data MANIFEST [--split test] [--task NAME] [--text-view V] [--set key.path=value] [--json]
//   --task draw --classifier RUN --clip RUN [--guidance 3] [--per-prompt 3] [--seed 0] [--out DIR]
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/eval/cmg.h"
#include "braid/eval/drawing.h"
#include "braid/eval/tasks.h"
#include "braid/run/run_dir.h"
#include "commands.h"

namespace braid::cli {

void add_generate_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);  // cmd_generate.cpp

namespace {

// caption / qa results: one row per task and baseline.
void print_generation(const nlohmann::json& tasks) {
  fmt::print("  {:<10} {:<10} {:>6} {:>8} {:>8} {:>7} {:>7}\n", "task", "answer by", "n", "exact", "token F1",
             "BLEU-4", "chrF");
  auto row = [](const std::string& task, const std::string& by, const nlohmann::json& s) {
    fmt::print("  {:<10} {:<10} {:>6} {:>8.4f} {:>8.4f} {:>7.4f} {:>7.4f}\n", task, by, s.value("n", 0),
               s.value("exact", 0.0), s.value("f1", 0.0), s.value("bleu4", 0.0), s.value("chrf", 0.0));
  };
  for (auto& [name, s] : tasks.items()) {
    row(name, "model", s);
    if (s.contains("nearest")) row(name, "nearest", s["nearest"]);
    if (s.contains("prior")) row(name, "prior", s["prior"]);
  }
}

// `braid eval RUN --set key.path=value`: RUN seen through a changed recipe. A temporary directory holds RUN's
// setup files with the overrides applied to its resolved recipe, and links to RUN's weights, so the model is
// built from the changed recipe and loads RUN's weights (e.g. --set model.code_modality=audio: a Uni-Code AVE
// localizer reading the other modality's codes, models/ave_localizer.h). Only a key that the resolved recipe
// holds may be set: it records every value the run read, so a key it lacks is misspelt or never read.
class RunView {
 public:
  RunView(const std::string& run_dir, const std::vector<std::string>& sets) {
    namespace fs = std::filesystem;
    const run::RunDir src(run_dir);
    BRAID_INPUT_CHECK(src.is_run(), "{}: not a braid run directory (no {})", run_dir, src.recipe());
    auto recipe = Config::from_file(src.recipe());
    for (const auto& s : sets) {
      const auto eq = s.find('=');
      BRAID_INPUT_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected key.path=value", s);
      const std::string key = s.substr(0, eq);
      // walk the tree read-only (a const node's operator[] adds no key; reset() rebinds, = would overwrite)
      YAML::Node at = recipe.node();
      bool holds = true;
      for (size_t from = 0; holds && from <= key.size();) {
        const size_t dot = std::min(key.find('.', from), key.size());
        const YAML::Node& here = at;
        holds = here.IsMap() && here[key.substr(from, dot - from)];
        if (holds) at.reset(here[key.substr(from, dot - from)]);
        from = dot + 1;
      }
      BRAID_INPUT_CHECK(holds, "--set '{}': {} has no key '{}' (eval may change only what the run's recipe holds)", s,
                        src.recipe(), key);
      recipe.set_path(key, s.substr(eq + 1));
    }
    std::string tmpl = (fs::temp_directory_path() / "braid-eval-XXXXXX").string();
    BRAID_INPUT_CHECK(::mkdtemp(tmpl.data()) != nullptr, "--set: cannot create a temporary directory ({})", tmpl);
    dir_ = tmpl;
    try {
      const run::RunDir view(dir_);
      for (const auto& f : src.setup_files())
        if (f != src.recipe()) fs::copy_file(f, dir_ + "/" + fs::path(f).filename().string());
      atomic_write_text(view.recipe(), recipe.dump());
      for (const auto& [from, to] : {std::pair{src.model(), view.model()}, std::pair{src.checkpoints(), view.checkpoints()}})
        if (fs::exists(from)) fs::create_symlink(fs::absolute(from), to);
    } catch (...) {
      remove_tree(dir_);  // the destructor does not run for a half-built view
      throw;
    }
  }
  ~RunView() { remove_tree(dir_); }
  RunView(const RunView&) = delete;
  RunView& operator=(const RunView&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace

void print_metrics(const std::string& title, const nlohmann::json& m) {
  fmt::print("{}\n", title);
  for (auto& [k, v] : m.items()) {
    if (k == "per_class" || k == "ccc_per_dim" || k == "examples") continue;
    if (k == "tasks" && v.is_object()) {
      print_generation(v);
      continue;
    }
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
  bool json = false;
  int threads = 0;
  std::string device;
  std::string task;                    // a name of eval::task_registry(); "" = the run's default
  std::string text_view;               // read this text view (e.g. zh) instead of the run's
  std::vector<std::string> sets;       // recipe overrides (RunView)
  eval::TaskRequest req;
};

// Evaluate a run's weights on a split of a manifest with one task; shared by `braid eval` and quickstart.
nlohmann::json evaluate_run(const std::string& run_dir, const std::string& manifest_path, const std::string& split,
                            const std::string& weights, const std::string& device, const std::string& task,
                            const std::string& text_view, eval::TaskRequest req) {
  auto p = run::open_run(run_dir, weights, device);
  if (!text_view.empty()) run::set_text_view(p, text_view);
  req.manifest = std::make_shared<data::Manifest>(data::Manifest::load(manifest_path));
  req.split = split;
  const std::string name = task.empty() ? eval::default_task(p) : task;
  auto res = eval::task_registry().make_by_name(name, "--task", p, req);
  res["task"] = name;
  if (!text_view.empty()) res["text_view"] = text_view;
  res["split"] = split;
  res["run"] = run_dir;
  return res;
}

void add_eval_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<EvalArgs>();
  auto* e = app.add_subcommand("eval", "evaluate a trained run on a manifest split");
  e->add_option("run", a->run, "run directory written by `braid train`")->required();
  e->add_option("--data", a->data, "manifest JSONL")->required();
  e->add_option("--split", a->split, "split to evaluate (train, val, test)")->capture_default_str();
  e->add_option("--weights", a->weights, run::weights_help())->capture_default_str();
  e->add_option("--threads", a->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  e->add_option("--device", a->device, "cpu, cuda or cuda:N (default: the run's device)");
  e->add_option("--task", a->task, "evaluation (`braid list tasks`): metrics, retrieval, zeroshot, probe, cmg, caption, qa, draw "
                 "(default: retrieval for align runs, caption for generate runs, else metrics)");
  e->add_option("--text-view", a->text_view, "read this text view of the samples (e.g. zh: cross-lingual retrieval)");
  e->add_option("--template", a->req.templates, "zero-shot prompt template, '{}' = class name (repeatable)");
  e->add_option("--classes", a->req.classes,
                 "zeroshot/probe label set: run (the run's class map), data (the evaluated split's labels), or auto "
                 "(data when the split has labels the run never saw)")->capture_default_str();
  e->add_option("--rerank-k", a->req.rerank_k, "models with a matching head: re-rank the retrieval top k by ITM")
      ->capture_default_str();
  e->add_option("--cmg-epochs", a->req.cmg_epochs, "cmg: full-batch training steps of each A->B head")->capture_default_str();
  e->add_option("--max-tokens", a->req.max_tokens, "caption/qa: new tokens per answer at most")->capture_default_str();
  e->add_option("--examples", a->req.examples, "caption/qa: generated examples kept in the JSON")->capture_default_str();
  e->add_option("--classifier", a->req.classifier, "draw: a classify run on images only, judging the drawn images (CAS)");
  e->add_option("--clip", a->req.clip,
                 "draw: an align run embedding image and text (retrieval R@1/R@10, KID, the nearest-name baseline)");
  e->add_option("--judge-weights", a->req.judge_weights, "draw: weights of the --classifier and --clip runs")
      ->capture_default_str();
  e->add_option("--guidance", a->req.guidance, "draw: classifier-free guidance weight (0 = unguided)")
      ->capture_default_str();
  e->add_option("--per-prompt", a->req.per_prompt, "draw: images drawn per row of the split")->capture_default_str();
  e->add_option("--temperature", a->req.temperature, "draw: sampling temperature of the image codes (0 = greedy)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  e->add_option("--top-k", a->req.top_k, "draw: sample among the k most likely codes (0 = all)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  e->add_option("--seed", a->req.seed, "draw: seed of the sampling and of the KID subsets")->capture_default_str();
  e->add_option("--out", a->req.out_dir, "draw: write every drawn PNG (<row id>-<k>.png), grid.png and prompts.txt here");
  e->add_option("--set", a->sets,
                 "evaluate the run's weights under a changed recipe value, key.path=value (repeatable; only keys of "
                 "the run's resolved recipe, e.g. model.code_modality=audio)");
  e->add_flag("--json", a->json, "print one JSON object of metrics as the last line of stdout");
  out.emplace_back(e, [a] {
    configure_threads(a->threads);
    std::optional<RunView> view;
    if (!a->sets.empty()) view.emplace(a->run, a->sets);
    auto m = evaluate_run(view ? view->dir() : a->run, a->data, a->split, a->weights, a->device, a->task, a->text_view,
                          a->req);
    if (view) {
      m["run"] = a->run;
      m["set"] = a->sets;
    }
    if (m["task"] == "cmg")
      fmt::print("{}", eval::format_cmg(m));
    else if (m["task"] == "draw")
      fmt::print("{}", eval::format_drawing(m));
    else
      print_metrics(fmt::format("{} on {} ({})", a->run, a->data, a->split), m);
    if (a->json) fmt::print("{}\n", m.dump());
    return 0;
  });
  add_generate_command(app, out);
}

}  // namespace braid::cli
