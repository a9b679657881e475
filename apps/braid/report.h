// apps/braid/report.h — `braid report`: one self-contained HTML page of a run (or several, compared).
//
// What a run directory holds (run/run_dir.h names every file) becomes:
//   charts   from metrics.jsonl: loss per split, every validation metric per split, the learning
//            rate, the gradient norm (when clipping logged it), the model's loss terms and statistics
//            (codebook perplexity and usage, temperature; a chart per shared name head: "clip" holds
//            clip, clip/image-text, ...; "ppl" holds ppl_audio, ppl_image, ...); and the
//            throughput over the last 10 logged steps, from the wall times of the TensorBoard event files
//   tables   the run's facts (run.json, summary.json), the final validation metrics and per-class
//            recall (summary.json "val"), the confusion matrix (when asked for: the model is run
//            over a manifest split), the resolved recipe (a line diff against the first run when
//            comparing)
// A section appears only when the run has its data. Charts are drawn by uPlot, compiled into the
// binary from node_modules at build time (report_assets.h.in), or as static SVG (`svg`, and always
// when braid was built without uPlot). The page needs no network and no file beside it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace braid::cli::report {

// One line of a chart: y at x (same length).
struct Line {
  std::string name;
  std::vector<double> x, y;
  int color = 0, dash = 0;  // palette index; 0 = solid, k = the k-th dash pattern (set when drawn)
};

// A chart of one quantity against the step.
struct Chart {
  std::string id;     // stable key: charts of the same id are overlaid when comparing runs
  std::string title, ylabel;
  std::vector<Line> lines;
};

// What the report shows of one run directory.
struct RunData {
  std::string dir, label;       // label: the directory's name (made unique when comparing)
  nlohmann::json facts, summary;  // run.json, summary.json (null when absent)
  std::string recipe;             // recipe.resolved.yaml as text
  std::vector<Chart> charts;      // in display order
  // The confusion matrix (confusion()), null unless asked for: {manifest, split, weights,
  // classes: [K names], counts: [K][K] (row = true class, column = predicted), n}.
  nlohmann::json confusion;
};

// Reads a run directory. InputError (one line naming the file, and the line for metrics.jsonl)
// when `dir` holds no resolved recipe, or a file it reads is not what train writes.
RunData load_run(const std::string& dir);

// Which samples and weights the confusion matrix of a classification run is counted on.
struct ConfusionRequest {
  std::string manifest;           // manifest JSONL
  std::string split = "val";
  std::string weights = "model";  // as `braid eval --weights`
  std::string device;             // "" = the run's
};

// The run's model over `req.split` of `req.manifest`: counts of (true class, argmax class) for
// every labelled sample. Null for a run that is not a classification run. InputError when the
// split holds no labelled sample (or the manifest, weights or split is bad, as `braid eval`).
nlohmann::json confusion(const std::string& dir, const ConfusionRequest& req);

// The page: one run's report, or with two or more runs their comparison. `svg`: static SVG charts
// instead of uPlot.
std::string render(const std::vector<RunData>& runs, bool svg);

// Whether this binary carries uPlot (else charts are always SVG), and its version.
bool has_uplot();
std::string uplot_version();

}  // namespace braid::cli::report
