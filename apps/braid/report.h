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
//   examples with a manifest (--data): retrieval examples of align runs (query images, top-5 texts and
//            images, inlined as data: URIs), generated samples of generative runs (prompt, answer, reference)
//   robustness  the per-modality noise curves of a `braid bench fusion` results.json (given or found
//            beside a bench run)
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
  std::string xlabel = "step";  // the x axis (robustness charts: the noise level)
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
  // Retrieval examples (retrieval_examples()), null unless asked for: {manifest, split, weights, view,
  // queries: [{id, label, image (data: URI), text: [hit...], image_hits: [hit...]}]}, a hit being
  // {id, label, score, same (the query's own sample), text or image (data: URI)}.
  nlohmann::json retrieval;
  // Generated samples (generated_samples()), null unless asked for: {manifest, split, weights,
  // samples: [{id, task, prompt, generated, reference, exact, input (the task's modality), image (data: URI of an image input)}]}.
  nlohmann::json generated;
  // Robustness curves (robustness()), null when there is no `braid bench fusion` results.json: {file, metric,
  // levels, modalities, run (this run's entry, or null)}; the curves themselves are charts "robustness/<mod>".
  nlohmann::json robustness;
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

// Align runs that embed images: `queries` query images spread over `req.split` of `req.manifest`, each with its
// top-5 texts and top-5 other images of the split by cosine (the run's model, as `braid eval`). Null for other
// runs. Images are inlined as data: URIs.
nlohmann::json retrieval_examples(const std::string& dir, const ConfusionRequest& req, int queries = 4);

// Generative runs: the greedy answers (eval::evaluate_generation, 16 tokens at most) of every task for `n`
// samples spread over `req.split`, with the task's prompt and the reference. Null for other runs.
nlohmann::json generated_samples(const std::string& dir, const ConfusionRequest& req, int n = 6);

// The robustness curves of `braid bench fusion` (its results.json: per noised modality, the test metric at
// each noise level, mean over seeds per method) as charts "robustness/<modality>" added to `run.charts`, with
// this run's own curve when results.json lists it. `file` "" = look for a results.json that lists this run in
// the 3 directories above it (a bench run is OUT/runs/<method>/seed<k>). Returns false when none.
// InputError when `file` (given or found) is not a bench results file.
bool add_robustness(RunData& run, const std::string& file);

// The page: one run's report, or with two or more runs their comparison. `svg`: static SVG charts
// instead of uPlot.
std::string render(const std::vector<RunData>& runs, bool svg);

// Whether this binary carries uPlot (else charts are always SVG), and its version.
bool has_uplot();
std::string uplot_version();

}  // namespace braid::cli::report
