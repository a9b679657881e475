// braid report RUN [--out report.html] [--svg] [--data MANIFEST [--split val] [--weights model]] [--robustness R.json]
// braid report --compare RUN1 RUN2 ... [--out report.html] [--svg] [--data MANIFEST ...]
// One self-contained HTML page of a run's curves and results, or of several runs side by side
// (apps/braid/report.h says what it shows; docs/report.md for users).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/run/run_dir.h"
#include "commands.h"
#include "report.h"

namespace braid::cli {

namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out = "report.html";
  bool compare = false;
  bool svg = false;
  report::ConfusionRequest confusion;  // .manifest empty: no confusion matrix, retrieval examples, generated samples
  std::string robustness;              // a `braid bench fusion` results.json ("" = look beside the run)
  int threads = 0;
};

int run_report(const ReportArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  BRAID_INPUT_CHECK(!a.runs.empty(), "braid report: give a run directory");
  if (a.compare)
    BRAID_INPUT_CHECK(a.runs.size() >= 2, "braid report --compare: give two or more run directories (got {})",
                      a.runs.size());
  else
    BRAID_INPUT_CHECK(a.runs.size() == 1, "braid report: {} run directories given; compare them with --compare",
                      a.runs.size());
  std::vector<report::RunData> runs;
  for (const auto& dir : a.runs) runs.push_back(report::load_run(dir));
  if (!a.confusion.manifest.empty()) {
    configure_threads(a.threads);
    for (auto& r : runs) {  // what the run's task calls for (each opens the model once)
      const std::string task = r.facts.is_object() ? r.facts.value("task", "") : "";
      if (task.empty() || task == "classify") r.confusion = report::confusion(r.dir, a.confusion);
      if (task.empty() || task == "align") r.retrieval = report::retrieval_examples(r.dir, a.confusion);
      if (task.empty() || task == "generate") r.generated = report::generated_samples(r.dir, a.confusion);
      if (r.confusion.is_null() && r.retrieval.is_null() && r.generated.is_null())
        spdlog::warn("{}: --data adds nothing for this run (a confusion matrix needs a classification run, retrieval "
                     "examples an align run embedding images, generated samples a generative run)", r.dir);
    }
  }
  for (auto& r : runs) report::add_robustness(r, a.robustness);
  // runs of the same directory name (a/run, b/run) are told apart by their paths
  std::set<std::string> seen, dup;
  for (const auto& r : runs)
    if (!seen.insert(r.label).second) dup.insert(r.label);
  for (auto& r : runs)
    if (dup.count(r.label)) r.label = r.dir;
  const std::string html = report::render(runs, a.svg);
  atomic_write_text(a.out, html);
  size_t charts = 0;
  for (const auto& r : runs) charts += r.charts.size();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("report: {} run(s), {} chart(s), {:.0f} KB, {:.0f} ms ({})", runs.size(), charts, html.size() / 1024.0,
               ms, a.svg || !report::has_uplot() ? "SVG charts" : "uPlot " + report::uplot_version());
  fmt::print("{}\n", a.out);
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<ReportArgs>();
  auto* r = app.add_subcommand("report", "one self-contained HTML page of a run's curves, metrics and recipe "
                                         "(or of several runs compared)");
  r->add_option("runs", a->runs, "run directory written by `braid train` (two or more with --compare)")->required();
  r->add_option("--out", a->out, "the HTML file to write")->capture_default_str();
  r->add_flag("--compare", a->compare, "compare the runs: curves overlaid, final metrics side by side, recipe diffs");
  r->add_flag("--svg", a->svg,
              report::has_uplot() ? "draw the charts as static SVG instead of with uPlot (no JavaScript)"
                                  : "static SVG charts (always so: this braid was built without uPlot)");
  r->add_option("--data", a->confusion.manifest,
                 "manifest JSONL: run each run's model over --split of it and add the confusion matrix (classification), "
                 "retrieval examples (align) or generated samples (generate)");
  r->add_option("--split", a->confusion.split, "with --data: the split to run the model on")->capture_default_str();
  r->add_option("--robustness", a->robustness,
                 "a `braid bench fusion` results.json: its robustness curves (default: the one beside a bench run, if any)");
  r->add_option("--weights", a->confusion.weights, "with --data: " + run::weights_help())->capture_default_str();
  r->add_option("--device", a->confusion.device, "with --data: cpu, cuda or cuda:N (default: the run's device)");
  r->add_option("--threads", a->threads, "with --data: intra-op threads (0 = all cores)")->capture_default_str();
  out.emplace_back(r, [a] { return run_report(*a); });
}

}  // namespace braid::cli
