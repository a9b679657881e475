// apps/braid/report.cpp — the HTML page of `braid report` (see report.h).
#include "report.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "braid/core/base64.h"
#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/precision.h"
#include "braid/core/tensorboard.h"
#include "braid/data/manifest.h"
#include "braid/eval/evaluate.h"
#include "braid/eval/generation.h"
#include "braid/run/run_dir.h"
#include "report_assets.h"  // generated: uPlot's script and style (or none), see CMakeLists.txt

namespace braid::cli::report {

bool has_uplot() { return kReportHasUplot; }
std::string uplot_version() { return kUplotVersion; }

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Reading a run

json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    input_error("{}: not valid JSON ({})", path, e.what());
  }
}

// Numeric leaves of a JSON object as ("a/b", value); arrays, strings and booleans are skipped.
void flatten(const json& j, const std::string& prefix, std::vector<std::pair<std::string, double>>& out) {
  for (const auto& [k, v] : j.items()) {
    if (v.is_number())
      out.emplace_back(prefix + k, v.get<double>());
    else if (v.is_object())
      flatten(v, prefix + k + "/", out);
  }
}

// Charts of a run, filled line by line; lines are kept in first-seen order.
class ChartSet {
 public:
  void add(const std::string& id, const std::string& title, const std::string& ylabel, const std::string& line,
           double x, double y) {
    auto it = index_.find(id);
    if (it == index_.end()) {
      it = index_.emplace(id, charts_.size()).first;
      charts_.push_back({id, title, ylabel, {}});
    }
    auto& c = charts_[it->second];
    auto l = std::find_if(c.lines.begin(), c.lines.end(), [&](const Line& a) { return a.name == line; });
    if (l == c.lines.end()) {
      c.lines.push_back({line, {}, {}});
      l = c.lines.end() - 1;
    }
    l->x.push_back(x);
    l->y.push_back(y);
  }
  // Display order: loss, the validation metrics, the model's loss terms, learning rate, gradient norm,
  // throughput.
  std::vector<Chart> take() {
    auto rank = [](const std::string& id) {
      if (id == "loss") return 0;
      if (id.rfind("metric/", 0) == 0) return 1;
      if (id.rfind("terms/", 0) == 0) return 2;
      if (id == "lr") return 3;
      if (id == "grad_norm") return 4;
      return 5;
    };
    std::stable_sort(charts_.begin(), charts_.end(),
                     [&](const Chart& a, const Chart& b) { return rank(a.id) < rank(b.id); });
    // a gradient norm of zero throughout is what the trainer logs without clipping: no data
    charts_.erase(std::remove_if(charts_.begin(), charts_.end(),
                                 [](const Chart& c) {
                                   if (c.id != "grad_norm") return false;
                                   for (const auto& l : c.lines)
                                     for (double v : l.y)
                                       if (v != 0) return false;
                                   return true;
                                 }),
                  charts_.end());
    return std::move(charts_);
  }

 private:
  std::vector<Chart> charts_;
  std::map<std::string, size_t> index_;
};

// metrics.jsonl: a train line {step, epoch, loss, lr, grad_norm, <loss terms>} per logged step and
// a validation line {step, epoch, split, <metrics>} per validation (train/trainer.cpp).
void add_term(std::vector<Line>& terms, const std::string& name, double x, double y) {
  auto it = std::find_if(terms.begin(), terms.end(), [&](const Line& l) { return l.name == name; });
  if (it == terms.end()) {
    terms.push_back({name, {}, {}});
    it = terms.end() - 1;
  }
  it->x.push_back(x);
  it->y.push_back(y);
}

// The model's loss terms (and the statistics it logs beside them: codebook perplexity and usage,
// temperature, ...), charted by head: the name up to its first '/' or '_' when two or more terms
// share it ("clip", "clip/image-text" -> chart "train clip" with lines clip, image-text; "ppl_audio",
// "ppl_image" -> "train ppl" with audio, image), else one chart for the term.
void chart_terms(const std::vector<Line>& terms, ChartSet& charts) {
  auto head_of = [](const std::string& k) { return k.substr(0, k.find_first_of("/_")); };
  std::map<std::string, int> count;
  for (const auto& t : terms) ++count[head_of(t.name)];
  for (const auto& t : terms) {
    const std::string head = head_of(t.name);
    const bool group = count[head] >= 2;
    const std::string chart = group ? head : t.name;
    const std::string line = !group || t.name == head ? t.name : t.name.substr(head.size() + 1);
    for (size_t i = 0; i < t.x.size(); ++i) charts.add("terms/" + chart, "train " + chart, chart, line, t.x[i], t.y[i]);
  }
}

void read_metrics(const std::string& path, ChartSet& charts) {
  std::vector<Line> terms;
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open", path);
  std::string line;
  int64_t no = 0;
  while (std::getline(f, line)) {
    ++no;
    const bool terminated = !f.eof();  // getline stopped at a newline
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      if (!terminated && !line.empty()) {  // a torn last line: a live run mid-write, or a killed one
        spdlog::warn("{}:{}: incomplete last line skipped", path, no);
        break;
      }
      if (line.empty()) input_error("{}:{}: empty line (expected one JSON object per line)", path, no);
      input_error("{}:{}: not valid JSON ({})", path, no, e.what());
    }
    BRAID_INPUT_CHECK(j.is_object(), "{}:{}: expected a JSON object, got {}", path, no, j.type_name());
    BRAID_INPUT_CHECK(j.contains("step") && j["step"].is_number_integer(), "{}:{}: no integer \"step\"", path, no);
    const double step = j["step"].get<double>();
    std::string split = "train";
    if (j.contains("split")) {
      BRAID_INPUT_CHECK(j["split"].is_string(), "{}:{}: \"split\" is not a string", path, no);
      split = j["split"].get<std::string>();
    }
    std::vector<std::pair<std::string, double>> values;
    flatten(j, "", values);
    for (const auto& [k, v] : values) {
      if (k == "step" || k == "epoch") continue;
      if (split == "train") {
        if (k == "loss")
          charts.add("loss", "loss", "loss", "train", step, v);
        else if (k == "lr")
          charts.add("lr", "learning rate", "learning rate", "train", step, v);
        else if (k == "grad_norm")
          charts.add("grad_norm", "gradient norm (before clipping)", "L2 norm", "train", step, v);
        else
          add_term(terms, k, step, v);
      } else {
        const auto first = k.find('/'), last = k.rfind('/');
        const std::string leaf = k.substr(last == std::string::npos ? 0 : last + 1);
        if (leaf == "n") continue;  // a sample count, not a curve
        if (k == "loss")
          charts.add("loss", "loss", "loss", split, step, v);
        else if (first != std::string::npos && first != last)  // group/name/leaf, e.g. retrieval/image->text/r1:
          charts.add("metric/" + k.substr(0, first) + "/" + leaf, k.substr(0, first) + " " + leaf, leaf,
                     split + ": " + k.substr(first + 1, last - first - 1), step, v);  // one chart per group and leaf
        else
          charts.add("metric/" + k, k, k, split, step, v);
      }
    }
  }
  chart_terms(terms, charts);
}

// Throughput over the last kWindow logged train steps (fewer at a session's start), from the wall
// times of the TensorBoard event files (one file per training session; the gap between sessions is
// never counted). A session's
// points from steps that a later session logged again (a resume) are dropped, as TensorBoard does.
constexpr size_t kWindow = 10;

void read_throughput(const run::RunDir& rd, int64_t global_batch, ChartSet& charts) {
  const auto files = rd.tensorboard_files();
  std::vector<tb::EventFile> events;
  for (const auto& f : files) events.push_back(tb::read_events(f));
  for (size_t i = 0; i < events.size(); ++i) {
    int64_t limit = std::numeric_limits<int64_t>::max();
    for (size_t k = i + 1; k < events.size(); ++k)
      for (int64_t s : events[k].session_starts) limit = std::min(limit, s);
    std::vector<std::pair<int64_t, double>> seen;  // (step, wall time) of this session's train lines
    for (const auto& s : events[i].scalars) {
      if (s.tag != "train/loss" || s.step >= limit) continue;
      if (!seen.empty() && (s.step <= seen.back().first || s.wall_time < seen.back().second)) continue;
      seen.emplace_back(s.step, s.wall_time);
      if (seen.size() < 2) continue;
      // the rate over the last (up to) kWindow logged intervals: one slow or fast step does not
      // make a spike that flattens the rest of the chart
      const auto& [step0, wall0] = seen[seen.size() - 1 - std::min<size_t>(kWindow, seen.size() - 1)];
      if (s.wall_time > wall0) {
        const double per_s = static_cast<double>(s.step - step0) / (s.wall_time - wall0);
        if (global_batch > 0)
          charts.add("throughput", "throughput (train samples per second)", "samples/s", "train",
                     static_cast<double>(s.step), per_s * global_batch);
        else
          charts.add("throughput_steps", "throughput (train steps per second)", "steps/s", "train",
                     static_cast<double>(s.step), per_s);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTML helpers

std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

// A number for people: integers as such, else 4 decimals (or scientific when tiny or huge).
std::string num(double v) {
  if (!std::isfinite(v)) return fmt::format("{}", v);
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  if (std::fabs(v) >= 1e-3 && std::fabs(v) < 1e6) return fmt::format("{:.4f}", v);
  return fmt::format("{:.3e}", v);
}

// A number for the page's data: full precision, JSON-safe (non-finite -> null).
std::string jnum(double v, int digits) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{:.{}g}", v, digits);
}

// A JSON string literal safe inside <script>: "</" cannot close the element.
std::string jstr(const std::string& s) {
  std::string d = json(s).dump();
  std::string o;
  for (size_t i = 0; i < d.size(); ++i) {
    o += d[i];
    if (d[i] == '<' && i + 1 < d.size() && d[i + 1] == '/') o += "\\";
  }
  return o;
}

// A chart's id as an HTML id (letters, digits and "_-./" kept, anything else "_").
std::string dom_id(const std::string& id) {
  std::string o = id;
  for (char& c : o)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' && c != '/') c = '_';
  return o;
}

std::string td_value(double v) { return fmt::format(R"(<td class="num" data-value="{}">{}</td>)", jnum(v, 17), num(v)); }

std::string get_str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string o;
    for (const auto& e : v) o += (o.empty() ? "" : "+") + (e.is_string() ? e.get<std::string>() : e.dump());
    return o;
  }
  return v.dump();
}

const char* kStyle = R"CSS(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 0 20px 40px; color: #1d2330; background: #fff; }
header { border-bottom: 2px solid #3b6fd8; margin-bottom: 8px; }
h1 { font-size: 22px; margin: 18px 0 4px; } h1 small { color: #666; font-weight: normal; font-size: 14px; }
h2 { font-size: 17px; margin: 26px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
nav a { margin-right: 14px; } .note { color: #666; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid #e4e6ea; padding: 3px 10px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: inline-block; height: 10px; background: #3b6fd8; vertical-align: middle; margin-left: 6px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
figure.chart { margin: 0; border: 1px solid #e4e6ea; border-radius: 6px; padding: 8px; overflow: hidden; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart svg { width: 100%; height: auto; }
pre { background: #f6f7f9; border: 1px solid #e4e6ea; padding: 10px; overflow: auto; font-size: 12.5px; }
pre.diff .add { background: #e3f6e5; display: block; } pre.diff .del { background: #fbe4e4; display: block; }
pre.diff .skip { color: #888; display: block; }
div.query { display: flex; gap: 14px; align-items: flex-start; border-top: 1px solid #eee; padding: 6px 0; }
div.query figure { margin: 0; width: 110px; font-size: 12px; }
div.query ol { margin: 0; padding-left: 22px; font-size: 13px; min-width: 260px; }
div.query ol.image-hits li { display: inline-block; margin-right: 8px; text-align: center; font-size: 11px; }
div.query ol.image-hits img { display: block; margin: auto; }
div.query li.same { font-weight: bold; }
span.score { color: #777; font-variant-numeric: tabular-nums; }
table.generated td { vertical-align: middle; }
table.confusion td.cm { text-align: center; min-width: 26px; font-variant-numeric: tabular-nums; border: 1px solid #eee; }
#report-errors { color: #a00; background: #fee; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0 56px; font-size: 12.5px; }
ul.legend li { display: inline-block; margin-right: 14px; }
ul.legend .swatch { display: inline-block; width: 22px; margin-right: 5px; vertical-align: middle; }
)CSS";

// Before anything else runs: every uncaught error and console.error is shown on the page (the
// browser test reads #report-errors).
const char* kErrorTrap = R"JS(
"use strict";
window.braidErrors = [];
(function () {
  function note(msg) {
    window.braidErrors.push(msg);
    var box = document.getElementById("report-errors");
    if (box) { box.hidden = false; box.textContent = window.braidErrors.join("\n"); }
  }
  window.addEventListener("error", function (e) { note("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + e.reason); });
  var orig = console.error;
  console.error = function () { note("console.error: " + Array.prototype.join.call(arguments, " ")); orig.apply(console, arguments); };
})();
)JS";

// Draws every chart of #report-data with uPlot into its figure's .plot element.
const char* kDrawScript = R"JS(
"use strict";
(function () {
  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var colors = data.colors, dashes = data.dashes;
  function tick(v, step) {  // axis labels: as many decimals as the tick step needs
    if (v === null) return "";
    var a = Math.abs(step);
    if (a >= 1e6 || (a > 0 && a < 1e-3)) return v.toExponential(1);
    return v.toFixed(Math.max(0, -Math.floor(Math.log10(a || 1))));
  }
  function ticks(u, vals) {
    var step = vals.length > 1 ? vals[1] - vals[0] : 1;
    return vals.map(function (v) { return tick(v, step); });
  }
  var drawn = 0, lines = 0;
  data.charts.forEach(function (c) {
    var fig = document.getElementById("chart-" + c.id);
    var el = fig.querySelector(".plot");
    var series = [{label: c.xlabel}];
    c.lines.forEach(function (l, i) {
      var points = l.y.filter(function (v) { return v !== null; }).length;
      var color = colors[l.color % colors.length];
      series.push({label: l.name, stroke: color, width: 1.5, spanGaps: true, dash: dashes[l.dash % dashes.length],
                   points: {show: points <= 60, size: 5, fill: color}});
    });
    var opts = {width: Math.max(360, (el.clientWidth || 520) - 4), height: 280, series: series,
                scales: {x: {time: false}}, axes: [{label: c.xlabel}, {label: c.ylabel, size: 64, values: ticks}],
                cursor: {drag: {x: true, y: false}}};
    new uPlot(opts, [c.x].concat(c.lines.map(function (l) { return l.y; })), el);
    fig.setAttribute("data-drawn", c.lines.length);
    drawn += 1;
    lines += c.lines.length;
  });
  var st = document.getElementById("report-status");
  if (st) st.textContent = "Drew " + drawn + " charts with " + lines + " lines in " + Math.round(performance.now() - t0) +
                           " ms (uPlot " + data.uplot + ").";
})();
)JS";

// Charts of all runs merged by id (in first-seen order); line names get the run's label in front
// when comparing.
std::vector<Chart> merge_charts(const std::vector<RunData>& runs) {
  std::vector<Chart> out;
  std::map<std::string, size_t> at;
  std::map<std::string, int> dash_of;  // comparing: one dash pattern per line name (train, val, ...) everywhere
  for (const auto& r : runs)
    for (const auto& c : r.charts) {
      auto it = at.find(c.id);
      if (it == at.end()) {
        it = at.emplace(c.id, out.size()).first;
        out.push_back({c.id, c.title, c.ylabel, {}, c.xlabel});
      }
      for (size_t k = 0; k < c.lines.size(); ++k) {
        Line named = c.lines[k];
        if (runs.size() > 1) {  // one colour per run
          named.name = r.label + ": " + named.name;
          named.color = static_cast<int>(&r - runs.data());
          named.dash = dash_of.emplace(c.lines[k].name, static_cast<int>(dash_of.size())).first->second;
        } else {
          named.color = static_cast<int>(k);
        }
        out[it->second].lines.push_back(std::move(named));
      }
    }
  return out;
}

// A chart as uPlot wants it: one x array (the union of the lines' steps) and per line a y array
// with null where the line has no point.
std::string chart_json(const Chart& c) {
  std::vector<double> xs;
  for (const auto& l : c.lines) xs.insert(xs.end(), l.x.begin(), l.x.end());
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  std::string o = "{\"id\":" + jstr(dom_id(c.id)) + ",\"ylabel\":" + jstr(c.ylabel) + ",\"xlabel\":" + jstr(c.xlabel) +
                  ",\"x\":[";
  for (size_t i = 0; i < xs.size(); ++i) o += (i ? "," : "") + jnum(xs[i], 15);
  o += "],\"lines\":[";
  for (size_t k = 0; k < c.lines.size(); ++k) {
    const auto& l = c.lines[k];
    // the line's points sorted by step; a step logged twice keeps its last value
    std::map<double, double> pts;
    for (size_t i = 0; i < l.x.size(); ++i) pts[l.x[i]] = l.y[i];
    o += (k ? "," : "") + fmt::format("{{\"name\":{},\"color\":{},\"dash\":{},\"y\":[", jstr(l.name), l.color, l.dash);
    auto p = pts.begin();
    for (size_t i = 0; i < xs.size(); ++i) {
      if (i) o += ',';
      if (p != pts.end() && p->first == xs[i]) {
        o += jnum(p->second, 7);
        ++p;
      } else {
        o += "null";
      }
    }
    o += "]}";
  }
  return o + "]}";
}

// Palette and dash patterns of the lines (both renderers).
const std::vector<std::string> kColors = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const std::vector<std::vector<int>> kDashes = {{}, {6, 4}, {2, 3}, {10, 3, 2, 3}};

// Axis ticks: about `want` round values (1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int want, double* step_out) {
  double span = hi - lo;
  if (!(span > 0)) span = std::max(1e-12, std::fabs(hi));
  const double raw = span / want, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  *step_out = step;
  return t;
}

std::string tick_label(double v, double step) {
  const double a = std::fabs(step);
  if (a >= 1e6 || (a > 0 && a < 1e-3)) return fmt::format("{:.1e}", v);
  return fmt::format("{:.{}f}", v, std::max(0, static_cast<int>(-std::floor(std::log10(a > 0 ? a : 1)))));
}

// The static fallback: one SVG line chart (axes, round ticks, grid) and an HTML legend under it.
std::string chart_svg(const Chart& c) {
  const double W = 540, H = 280, L = 62, R = 14, T = 10, B = 42;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& l : c.lines)
    for (size_t i = 0; i < l.x.size(); ++i)
      if (std::isfinite(l.y[i])) {
        x0 = std::min(x0, l.x[i]), x1 = std::max(x1, l.x[i]);
        y0 = std::min(y0, l.y[i]), y1 = std::max(y1, l.y[i]);
      }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 1, x1 += 1;
  const double ypad = y1 > y0 ? 0.04 * (y1 - y0) : std::max(1e-9, 0.05 * std::fabs(y0));
  y0 -= ypad, y1 += ypad;
  double xstep = 1, ystep = 1;
  const auto xt = nice_ticks(x0, x1, 6, &xstep), yt = nice_ticks(y0, y1, 5, &ystep);
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string o = fmt::format(R"svg(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}" height="{}" )svg"
                              R"svg(font-family="sans-serif" font-size="11" role="img" aria-label="{}">)svg",
                              W, H, W, H, esc(c.title));
  for (double y : yt)
    o += fmt::format(R"svg(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#e4e6ea"/><text x="{}" y="{:.1f}" )svg"
                     R"svg(text-anchor="end">{}</text>)svg",
                     L, py(y), W - R, py(y), L - 5, py(y) + 4, tick_label(y, ystep));
  for (double x : xt)
    o += fmt::format(R"svg(<line x1="{:.1f}" y1="{}" x2="{:.1f}" y2="{}" stroke="#e4e6ea"/><text x="{:.1f}" y="{}" )svg"
                     R"svg(text-anchor="middle">{}</text>)svg",
                     px(x), T, px(x), H - B, px(x), H - B + 15, tick_label(x, xstep));
  o += fmt::format(R"svg(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>)svg", L, T, W - L - R, H - T - B);
  o += fmt::format(R"svg(<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>)svg", (L + W - R) / 2, H - 6,
                   esc(c.xlabel));
  o += fmt::format(R"svg(<text x="14" y="{0}" text-anchor="middle" font-weight="bold" transform="rotate(-90 14 {0})">{1}</text>)svg",
                   (T + H - B) / 2, esc(c.ylabel));
  std::string legend = "<ul class=\"legend\">";
  for (const auto& l : c.lines) {
    const std::string& color = kColors[l.color % kColors.size()];
    const auto& dash = kDashes[l.dash % kDashes.size()];
    std::string dasharray;
    for (int d : dash) dasharray += (dasharray.empty() ? "" : ",") + std::to_string(d);
    std::map<double, double> pts;  // sorted by step; a step logged twice keeps its last value
    for (size_t i = 0; i < l.x.size(); ++i)
      if (std::isfinite(l.y[i])) pts[l.x[i]] = l.y[i];
    std::string p;
    for (const auto& [x, y] : pts) p += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    o += fmt::format(R"svg(<polyline class="line" data-name="{}" fill="none" stroke="{}" stroke-width="1.5"{} points="{}"/>)svg",
                     esc(l.name), color, dasharray.empty() ? "" : " stroke-dasharray=\"" + dasharray + "\"", p);
    if (pts.size() <= 60)
      for (const auto& [x, y] : pts) o += fmt::format(R"svg(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="{}"/>)svg", px(x), py(y), color);
    legend += fmt::format(R"svg(<li><span class="swatch" style="border-top: 3px {} {}"></span>{}</li>)svg",
                          dash.empty() ? "solid" : "dashed", color, esc(l.name));
  }
  return o + "</svg>" + legend + "</ul>";
}

// Line diff (longest common subsequence) of two texts: lines prefixed "  ", "- " or "+ ".
std::vector<std::pair<char, std::string>> line_diff(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    std::vector<std::string> v;
    size_t i = 0;
    while (i < s.size()) {
      size_t j = s.find('\n', i);
      if (j == std::string::npos) j = s.size();
      v.push_back(s.substr(i, j - i));
      i = j + 1;
    }
    return v;
  };
  const auto A = split(a), B = split(b);
  const size_t n = A.size(), m = B.size();
  std::vector<std::pair<char, std::string>> out;
  if (n * m > 16'000'000) {  // recipes are a few hundred lines; beyond this show both whole
    for (const auto& l : A) out.emplace_back('-', l);
    for (const auto& l : B) out.emplace_back('+', l);
    return out;
  }
  std::vector<uint32_t> L((n + 1) * (m + 1), 0);  // L[i][j]: LCS length of A[i:], B[j:]
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      L[i * (m + 1) + j] = A[i] == B[j] ? L[(i + 1) * (m + 1) + j + 1] + 1
                                         : std::max(L[(i + 1) * (m + 1) + j], L[i * (m + 1) + j + 1]);
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && A[i] == B[j]) {
      out.emplace_back(' ', A[i]);
      ++i, ++j;
    } else if (i < n && (j == m || L[(i + 1) * (m + 1) + j] >= L[i * (m + 1) + j + 1])) {
      out.emplace_back('-', A[i++]);  // removals before additions, as diff -u shows them
    } else {
      out.emplace_back('+', B[j++]);
    }
  }
  return out;
}

std::string diff_html(const std::vector<std::pair<char, std::string>>& d, int* changed) {
  const int ctx = 3;
  std::vector<bool> keep(d.size(), false);
  *changed = 0;
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i].first != ' ') {
      ++*changed;
      for (size_t k = i >= ctx ? i - ctx : 0; k < std::min(d.size(), i + ctx + 1); ++k) keep[k] = true;
    }
  std::string o = "<pre class=\"diff\">";
  size_t skipped = 0;
  auto flush = [&] {
    if (skipped) o += fmt::format("<span class=\"skip\">… {} unchanged line{}</span>", skipped, skipped > 1 ? "s" : "");
    skipped = 0;
  };
  for (size_t i = 0; i < d.size(); ++i) {
    if (!keep[i]) {
      ++skipped;
      continue;
    }
    flush();
    const auto& [k, text] = d[i];
    if (k == '+') o += "<span class=\"add\">+ " + esc(text) + "</span>";
    else if (k == '-') o += "<span class=\"del\">- " + esc(text) + "</span>";
    else o += "  " + esc(text) + "\n";
  }
  flush();
  return o + "</pre>\n";
}

// Rows of the run table: (label, value per run as HTML cell).
std::string facts_table(const std::vector<RunData>& runs) {
  std::string o = "<table id=\"facts-table\">\n";
  if (runs.size() > 1) {
    o += "<tr><th></th>";
    for (const auto& r : runs) o += "<th>" + esc(r.label) + "</th>";
    o += "</tr>\n";
  }
  auto text_row = [&](const std::string& name, auto get) {
    std::vector<std::string> v;
    bool any = false;
    for (const auto& r : runs) {
      v.push_back(get(r));
      any = any || !v.back().empty();
    }
    if (!any) return;
    o += "<tr><th>" + esc(name) + "</th>";
    for (const auto& s : v) o += "<td>" + esc(s) + "</td>";
    o += "</tr>\n";
  };
  auto num_row = [&](const std::string& name, const std::string& key, auto value) {
    std::vector<double> v;
    bool any = false;
    for (const auto& r : runs) {
      v.push_back(value(r));
      any = any || !std::isnan(v.back());
    }
    if (!any) return;
    o += "<tr data-key=\"" + esc(key) + "\"><th>" + esc(name) + "</th>";
    for (double x : v) o += std::isnan(x) ? std::string("<td></td>") : td_value(x);
    o += "</tr>\n";
  };
  auto sum = [](const RunData& r, const char* k) {
    return r.summary.is_object() && r.summary.contains(k) && r.summary[k].is_number() ? r.summary[k].get<double>() : NAN;
  };
  text_row("directory", [](const RunData& r) { return r.dir; });
  text_row("task", [](const RunData& r) { return get_str(r.facts, "task"); });
  text_row("model", [](const RunData& r) {
    try {
      return Config::from_string(r.recipe).at("model").get<std::string>("name", "");
    } catch (const std::exception&) {
      return std::string();
    }
  });
  text_row("modalities", [](const RunData& r) { return get_str(r.facts, "modalities"); });
  text_row("braid version", [](const RunData& r) { return get_str(r.facts, "braid_version"); });
  num_row("steps", "steps", [&](const RunData& r) { return sum(r, "steps"); });
  num_row("training time (s)", "seconds", [&](const RunData& r) { return sum(r, "seconds"); });
  num_row("parameters", "parameters", [&](const RunData& r) { return sum(r, "parameters"); });
  num_row("trainable parameters", "trainable_parameters", [&](const RunData& r) { return sum(r, "trainable_parameters"); });
  num_row("global batch", "global_batch", [&](const RunData& r) { return sum(r, "global_batch"); });
  num_row("data-parallel ranks", "world_size", [&](const RunData& r) { return sum(r, "world_size"); });
  num_row("mean throughput (samples/s, validation included)", "samples_per_second", [&](const RunData& r) {
    const double s = sum(r, "seconds"), n = sum(r, "steps"), b = sum(r, "global_batch");
    return s > 0 ? n * b / s : NAN;
  });
  num_row("best validation step", "best_step", [&](const RunData& r) { return sum(r, "best_step"); });
  return o + "</table>\n";
}

// summary.json "val": the final model's validation metrics (per_class is its own table).
std::string final_metrics(const std::vector<RunData>& runs) {
  std::vector<std::string> keys;
  std::vector<std::map<std::string, double>> vals(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& s = runs[i].summary;
    if (!s.is_object() || !s.contains("val") || !s["val"].is_object()) continue;
    json val = s["val"];
    val.erase("per_class");
    std::vector<std::pair<std::string, double>> flat;
    flatten(val, "", flat);
    for (const auto& [k, v] : flat) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      vals[i][k] = v;
    }
  }
  if (keys.empty()) return "";
  std::string o = "<section id=\"final\">\n<h2>Final validation metrics</h2>\n"
                  "<p class=\"note\">The final model (best validated weights) scored on the validation split "
                  "at the end of training (summary.json).</p>\n<table id=\"final-metrics\">\n";
  // one run: group/name/leaf metrics (retrieval directions, zero-shot sets...) as a table per group
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> names, leaves;
  if (runs.size() == 1) {
    std::vector<std::string> flat;
    for (const auto& k : keys) {
      const auto first = k.find('/'), last = k.rfind('/');
      if (first == std::string::npos || first == last) {
        flat.push_back(k);
        continue;
      }
      const std::string g = k.substr(0, first), name = k.substr(first + 1, last - first - 1), leaf = k.substr(last + 1);
      if (!names.count(g)) groups.push_back(g);
      auto& n = names[g];
      auto& l = leaves[g];
      if (std::find(n.begin(), n.end(), name) == n.end()) n.push_back(name);
      if (std::find(l.begin(), l.end(), leaf) == l.end()) l.push_back(leaf);
    }
    keys = flat;
  }
  o += "<tr><th>metric</th>";
  for (const auto& r : runs) o += "<th>" + esc(runs.size() > 1 ? r.label : std::string("value")) + "</th>";
  o += "</tr>\n";
  std::string tail;
  for (const auto& g : groups) {
    tail += "<h3>" + esc(g) + "</h3>\n<table id=\"final-" + esc(dom_id(g)) + "\">\n<tr><th></th>";
    for (const auto& l : leaves[g]) tail += "<th>" + esc(l) + "</th>";
    tail += "</tr>\n";
    for (const auto& n : names[g]) {
      tail += "<tr data-key=\"" + esc(n) + "\"><th>" + esc(n) + "</th>";
      for (const auto& l : leaves[g]) {
        auto it = vals[0].find(g + "/" + n + "/" + l);
        tail += it == vals[0].end() ? std::string("<td></td>") : td_value(it->second);
      }
      tail += "</tr>\n";
    }
    tail += "</table>\n";
  }
  for (const auto& k : keys) {
    o += "<tr data-key=\"" + esc(k) + "\"><th>" + esc(k) + "</th>";
    for (const auto& v : vals) {
      auto it = v.find(k);
      o += it == v.end() ? std::string("<td></td>") : td_value(it->second);
    }
    o += "</tr>\n";
  }
  return o + "</table>\n" + tail + "</section>\n";
}

std::string per_class(const std::vector<RunData>& runs) {
  std::vector<std::string> classes;
  std::vector<std::map<std::string, std::pair<double, double>>> vals(runs.size());  // class -> (recall, n)
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& s = runs[i].summary;
    if (!s.is_object() || !s.contains("val") || !s["val"].is_object() || !s["val"].contains("per_class")) continue;
    for (const auto& [name, v] : s["val"]["per_class"].items()) {
      if (!v.is_object() || !v.contains("recall") || !v["recall"].is_number()) continue;
      if (std::find(classes.begin(), classes.end(), name) == classes.end()) classes.push_back(name);
      vals[i][name] = {v["recall"].get<double>(), v.contains("n") && v["n"].is_number() ? v["n"].get<double>() : NAN};
    }
  }
  if (classes.empty()) return "";
  std::string o = "<section id=\"per-class\">\n<h2>Per-class recall</h2>\n"
                  "<p class=\"note\">Share of each class's validation samples that the final model labels correctly "
                  "(summary.json); n = samples of the class.</p>\n<table id=\"per-class-table\">\n<tr><th>class</th>";
  if (runs.size() == 1)
    o += "<th>n</th><th>recall</th><th></th>";
  else
    for (const auto& r : runs) o += "<th colspan=\"2\">" + esc(r.label) + "</th>";
  o += "</tr>\n";
  for (const auto& c : classes) {
    o += "<tr data-key=\"" + esc(c) + "\"><th>" + esc(c) + "</th>";
    for (size_t i = 0; i < runs.size(); ++i) {
      auto it = vals[i].find(c);
      if (it == vals[i].end()) {
        o += runs.size() == 1 ? "<td></td><td></td><td></td>" : "<td></td><td></td>";
        continue;
      }
      const auto [recall, n] = it->second;
      if (runs.size() == 1) o += std::isnan(n) ? std::string("<td></td>") : "<td class=\"num\">" + num(n) + "</td>";
      o += fmt::format(R"(<td class="num" data-value="{}">{:.3f}</td><td><span class="bar" style="width:{:.0f}px"></span></td>)",
                       jnum(recall, 17), recall, std::clamp(recall, 0.0, 1.0) * 120);
    }
    o += "</tr>\n";
  }
  return o + "</table>\n</section>\n";
}

// Rows: true class, columns: predicted class; each cell the count, shaded by its share of the row;
// the last column the row's recall (diagonal / row sum).
std::string confusion_section(const std::vector<RunData>& runs) {
  std::string o;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto& c = runs[r].confusion;
    if (!c.is_object()) continue;
    const auto names = c["classes"].get<std::vector<std::string>>();
    const auto counts = c["counts"].get<std::vector<std::vector<int64_t>>>();
    if (o.empty())
      o = "<section id=\"confusion\">\n<h2>Confusion matrix</h2>\n<p class=\"note\">Rows: the true class; columns: "
          "the predicted class (argmax), numbered as the rows; each cell the number of samples, shaded by its share of "
          "the row; recall = diagonal / row.</p>\n";
    o += fmt::format("<h3>{}{} split of <code>{}</code>, weights {}, {} samples</h3>\n",
                     runs.size() > 1 ? esc(runs[r].label) + ": " : "", esc(c["split"].get<std::string>()),
                     esc(c["manifest"].get<std::string>()), esc(c["weights"].get<std::string>()), c["n"].get<int64_t>());
    o += fmt::format("<table class=\"confusion\" id=\"confusion{}\">\n<tr><th>true \\ predicted</th>",
                     runs.size() > 1 ? "-" + std::to_string(r) : "");
    for (size_t j = 0; j < names.size(); ++j) o += fmt::format("<th title=\"{}\">{}</th>", esc(names[j]), j + 1);
    o += "<th>recall</th></tr>\n";
    for (size_t i = 0; i < names.size(); ++i) {
      int64_t row = 0;
      for (int64_t v : counts[i]) row += v;
      o += fmt::format("<tr data-key=\"{}\"><th>{}. {}</th>", esc(names[i]), i + 1, esc(names[i]));
      for (size_t j = 0; j < names.size(); ++j) {
        const double share = row ? static_cast<double>(counts[i][j]) / row : 0.0;
        o += fmt::format(R"td(<td class="cm{}" data-count="{}" style="background: rgba({},{:.3f})">{}</td>)td",
                         i == j ? " diag" : "", counts[i][j], i == j ? "44,160,44" : "214,39,40", share,
                         counts[i][j] ? std::to_string(counts[i][j]) : "");
      }
      o += row ? td_value(static_cast<double>(counts[i][i]) / row) : std::string("<td></td>");
      o += "</tr>\n";
    }
    o += "</table>\n";
  }
  return o.empty() ? o : o + "</section>\n";
}


// A file's bytes as a data: URI (PNG, JPEG, BMP, by signature), so the page needs no file beside it. "" when
// the file is missing, unknown or larger than 4 MB.
std::string data_uri(const std::string& path) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec) || std::filesystem::file_size(path, ec) > (4u << 20))
    return "";
  const std::string b = read_text_file(path);
  const char* mime = b.rfind("\x89PNG", 0) == 0 ? "image/png" : b.rfind("\xff\xd8", 0) == 0 ? "image/jpeg"
                     : b.rfind("BM", 0) == 0 ? "image/bmp" : nullptr;
  if (!mime) return "";
  return std::string("data:") + mime + ";base64," + base64(b);
}

std::string img_tag(const json& j, const char* key, const std::string& alt, int px) {
  const std::string uri = j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
  if (uri.empty()) return "";
  return fmt::format(R"(<img src="{}" alt="{}" width="{}" height="{}">)", uri, esc(alt), px, px);
}

// Query images with their top-5 texts and images (retrieval_examples()).
std::string retrieval_section(const std::vector<RunData>& runs) {
  std::string o;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto& x = runs[r].retrieval;
    if (!x.is_object()) continue;
    if (o.empty())
      o = "<section id=\"retrieval\">\n<h2>Retrieval examples</h2>\n<p class=\"note\">Query images spread over the "
          "split, each with the split's 5 texts and 5 other images closest to it (cosine of the run's embeddings); "
          "<b>bold</b> marks the query's own sample.</p>\n";
    o += fmt::format("<h3>{}{} split of <code>{}</code>, weights {}</h3>\n", runs.size() > 1 ? esc(runs[r].label) + ": " : "",
                     esc(get_str(x, "split")), esc(get_str(x, "manifest")), esc(get_str(x, "weights")));
    o += fmt::format("<div class=\"retrieval\" id=\"retrieval{}\">\n", runs.size() > 1 ? "-" + std::to_string(r) : "");
    for (const auto& q : x["queries"]) {
      o += fmt::format("<div class=\"query\" data-id=\"{}\"><figure>{}<figcaption>{}<br><small>{}</small></figcaption></figure>",
                       esc(get_str(q, "id")), img_tag(q, "image", get_str(q, "id"), 64), esc(get_str(q, "id")),
                       esc(get_str(q, "label")));
      if (q.contains("text")) {
        o += "<ol class=\"text-hits\">";
        for (const auto& h : q["text"])
          o += fmt::format(R"(<li data-id="{}" data-score="{}"{}>{} <span class="score">{:.3f}</span></li>)",
                           esc(get_str(h, "id")), jnum(h["score"].get<double>(), 9),
                           h.value("same", false) ? " class=\"same\"" : "", esc(get_str(h, "text")),
                           h["score"].get<double>());
        o += "</ol>";
      }
      o += "<ol class=\"image-hits\">";
      for (const auto& h : q["image_hits"])
        o += fmt::format(R"(<li data-id="{}" data-score="{}">{}<span>{} <span class="score">{:.3f}</span></span></li>)",
                         esc(get_str(h, "id")), jnum(h["score"].get<double>(), 9), img_tag(h, "image", get_str(h, "id"), 40),
                         esc(get_str(h, "label")), h["score"].get<double>());
      o += "</ol></div>\n";
    }
    o += "</div>\n";
  }
  return o.empty() ? o : o + "</section>\n";
}

// Prompts, generated answers and references (generated_samples()).
std::string generated_section(const std::vector<RunData>& runs) {
  std::string o;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto& x = runs[r].generated;
    if (!x.is_object()) continue;
    if (o.empty())
      o = "<section id=\"generated\">\n<h2>Generated samples</h2>\n<p class=\"note\">The run's greedy answers "
          "(at most 16 tokens) to each task's prompt for samples spread over the split, against the reference; "
          "✓ marks an exact match (lower-cased, trimmed).</p>\n";
    o += fmt::format("<h3>{}{} split of <code>{}</code>, weights {}</h3>\n", runs.size() > 1 ? esc(runs[r].label) + ": " : "",
                     esc(get_str(x, "split")), esc(get_str(x, "manifest")), esc(get_str(x, "weights")));
    o += fmt::format("<table class=\"generated\" id=\"generated{}\">\n<tr><th>input</th><th>id</th><th>task</th>"
                     "<th>prompt</th><th>generated</th><th>reference</th><th></th></tr>\n",
                     runs.size() > 1 ? "-" + std::to_string(r) : "");
    for (const auto& g : x["samples"])
      o += fmt::format("<tr data-id=\"{}\" data-task=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"prompt\">{}</td>"
                       "<td class=\"gen\">{}</td><td class=\"ref\">{}</td><td>{}</td></tr>\n",
                       esc(get_str(g, "id")), esc(get_str(g, "task")),
                       get_str(g, "image").empty() ? esc(get_str(g, "input")) : img_tag(g, "image", get_str(g, "id"), 40),
                       esc(get_str(g, "id")), esc(get_str(g, "task")), esc(get_str(g, "prompt")),
                       esc(get_str(g, "generated")), esc(get_str(g, "reference")), g.value("exact", false) ? "✓" : "");
    o += "</table>\n";
  }
  return o.empty() ? o : o + "</section>\n";
}

std::string chart_figure(const Chart& c, bool svg);

// The robustness charts of `braid bench fusion` (add_robustness()), drawn like the curves.
std::string robustness_section(const std::vector<RunData>& runs, const std::vector<Chart>& charts, bool svg) {
  std::string o;
  for (const auto& c : charts)
    if (c.id.rfind("robustness/", 0) == 0) o += chart_figure(c, svg);
  if (o.empty()) return o;
  std::string files;
  for (const auto& r : runs)
    if (r.robustness.is_object()) files += (files.empty() ? "" : ", ") + std::string("<code>") + esc(get_str(r.robustness, "file")) + "</code>";
  return "<section id=\"robustness\">\n<h2>Robustness</h2>\n<p class=\"note\">From <code>braid bench fusion</code>'s " +
         files + ": the test metric as one modality is noised at test time (level 0 = clean), the mean over seeds per "
         "fusion method, and this run's own curve when the benchmark trained it.</p>\n<div class=\"charts\">\n" + o +
         "</div>\n</section>\n";
}

std::string recipe_section(const std::vector<RunData>& runs) {
  std::string o = "<section id=\"recipe\">\n<h2>Recipe</h2>\n";
  if (runs.size() == 1) {
    o += "<p class=\"note\">recipe.resolved.yaml: every effective setting of the run.</p>\n";
    return o + "<pre id=\"recipe-text\">" + esc(runs[0].recipe) + "</pre>\n</section>\n";
  }
  o += fmt::format("<p class=\"note\">Line diff of each run's recipe.resolved.yaml against {}'s "
                   "(- only in {}, + only in the other).</p>\n", esc(runs[0].label), esc(runs[0].label));
  for (size_t i = 1; i < runs.size(); ++i) {
    int changed = 0;
    const std::string body = diff_html(line_diff(runs[0].recipe, runs[i].recipe), &changed);
    o += fmt::format("<h3 class=\"recipe-diff\" data-changed=\"{}\">{} → {}: {}</h3>\n", changed, esc(runs[0].label),
                     esc(runs[i].label), changed ? fmt::format("{} changed line{}", changed, changed > 1 ? "s" : "")
                                                 : std::string("identical"));
    if (changed) o += body;
  }
  return o + "</section>\n";
}

}  // namespace

RunData load_run(const std::string& dir) {
  std::error_code ec;
  BRAID_INPUT_CHECK(std::filesystem::is_directory(dir, ec), "{}: not a directory (expected a run directory "
                    "written by `braid train --out`)", dir);
  run::RunDir rd(dir);
  BRAID_INPUT_CHECK(rd.is_run(), "{}: not a run directory ({} is missing)", dir, rd.recipe());
  RunData r;
  r.dir = dir;
  std::string name = dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  r.label = std::filesystem::path(name).filename().string();
  if (r.label.empty() || r.label == ".") r.label = std::filesystem::absolute(name).filename().string();
  r.recipe = read_text_file(rd.recipe());
  if (file_exists(rd.facts())) r.facts = read_json_file(rd.facts());
  if (file_exists(rd.summary())) r.summary = read_json_file(rd.summary());
  ChartSet charts;
  if (file_exists(rd.metrics())) read_metrics(rd.metrics(), charts);
  int64_t global_batch = 0;
  if (r.summary.is_object() && r.summary.contains("global_batch") && r.summary["global_batch"].is_number_integer())
    global_batch = r.summary["global_batch"].get<int64_t>();
  read_throughput(rd, global_batch, charts);
  r.charts = charts.take();
  return r;
}

json confusion(const std::string& dir, const ConfusionRequest& req) {
  auto p = run::open_run(dir, req.weights, req.device);
  if (p.task != run::Task::Classify || !p.classes) return nullptr;
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(req.manifest));
  auto loader = p.loader(m, req.split, false);
  const int64_t K = p.classes->size();
  std::vector<std::vector<int64_t>> counts(K, std::vector<int64_t>(K, 0));
  int64_t n = 0;
  torch::NoGradGuard ng;
  p.model->eval();
  eval::for_each_batch(p, *loader, "confusion", [&](const Batch& b, const Batch& dev) {
    torch::Tensor pred;
    {
      AutocastScope ac(p.device.type(), p.precision);
      pred = p.model->forward(dev).argmax(1).to(torch::kCPU).to(torch::kLong).contiguous();
    }
    if (!b.labels.defined()) return;
    auto y = b.labels.to(torch::kLong).contiguous();
    auto pa = pred.accessor<int64_t, 1>();
    auto ya = y.accessor<int64_t, 1>();
    for (int64_t i = 0; i < y.size(0); ++i) {
      if (ya[i] < 0 || ya[i] >= K || pa[i] < 0 || pa[i] >= K) continue;  // unlabelled
      ++counts[ya[i]][pa[i]];
      ++n;
    }
  });
  BRAID_INPUT_CHECK(n > 0, "{}: split '{}' holds no labelled sample to count a confusion matrix on", req.manifest,
                    req.split);
  return {{"manifest", req.manifest}, {"split", req.split}, {"weights", req.weights},
          {"classes", p.classes->names()}, {"counts", counts}, {"n", n}};
}


json retrieval_examples(const std::string& dir, const ConfusionRequest& req, int queries) {
  auto p = run::open_run(dir, req.weights, req.device);
  const auto embeds = p.model->capabilities().embeds;
  auto has = [&](const char* m) { return std::find(embeds.begin(), embeds.end(), m) != embeds.end(); };
  if (p.task != run::Task::Align || !has("image")) return nullptr;
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(req.manifest));
  BRAID_INPUT_CHECK(!m->split_indices(req.split).empty(), "{}: split '{}' holds no sample to show retrieval examples on",
                    req.manifest, req.split);
  auto loader = p.loader(m, req.split, false);
  p.model->eval();
  torch::NoGradGuard ng;
  const auto e = eval::embed_all(p, *loader, "retrieval examples");
  BRAID_INPUT_CHECK(e.vectors.count("image") && e.vectors.at("image").size(0) >= 2,
                    "{}: split '{}' holds fewer than 2 images to show retrieval examples on", req.manifest, req.split);
  std::string view = p.pre->options().text.view;
  if (view == "random") view = "";
  const auto& S = m->samples();
  const auto img = e.vectors.at("image");
  const auto img_rows = e.index.at("image").to(torch::kLong).contiguous();
  const bool text = e.vectors.count("text") && e.vectors.at("text").size(0) > 0;
  const int64_t N = img.size(0), Q = std::min<int64_t>(queries, N);
  json out = {{"manifest", req.manifest}, {"split", req.split}, {"weights", req.weights}, {"view", view},
              {"queries", json::array()}};
  auto sample = [&](int64_t row) -> const data::SampleRecord& { return S.at(static_cast<size_t>(row)); };
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t i = q * N / Q;  // spread over the split
    const int64_t row = img_rows[i].item<int64_t>();
    const auto& s = sample(row);
    json jq = {{"id", s.id}, {"label", s.label.value_or("")}, {"image", data_uri(s.image)}};
    if (text) {
      const auto& txt = e.vectors.at("text");
      const auto txt_rows = e.index.at("text").to(torch::kLong);
      auto top = torch::matmul(txt, img[i]).topk(std::min<int64_t>(5, txt.size(0)));
      json hits = json::array();
      for (int64_t k = 0; k < std::get<1>(top).size(0); ++k) {
        const int64_t r = txt_rows[std::get<1>(top)[k].item<int64_t>()].item<int64_t>();
        const std::string* t = sample(r).text_view(view);
        hits.push_back({{"id", sample(r).id}, {"label", sample(r).label.value_or("")},
                        {"score", std::get<0>(top)[k].item<double>()}, {"same", r == row}, {"text", t ? *t : ""}});
      }
      jq["text"] = hits;
    }
    auto sims = torch::matmul(img, img[i]);
    sims[i] = -std::numeric_limits<float>::infinity();  // not the query itself
    auto top = sims.topk(std::min<int64_t>(5, N - 1));
    json hits = json::array();
    for (int64_t k = 0; k < std::get<1>(top).size(0); ++k) {
      const int64_t r = img_rows[std::get<1>(top)[k].item<int64_t>()].item<int64_t>();
      hits.push_back({{"id", sample(r).id}, {"label", sample(r).label.value_or("")},
                      {"score", std::get<0>(top)[k].item<double>()}, {"same", r == row}, {"image", data_uri(sample(r).image)}});
    }
    jq["image_hits"] = hits;
    out["queries"].push_back(jq);
  }
  return out;
}

json generated_samples(const std::string& dir, const ConfusionRequest& req, int n) {
  auto p = run::open_run(dir, req.weights, req.device);
  if (p.task != run::Task::Generate) return nullptr;
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(req.manifest));
  const auto all = m->split_indices(req.split);
  BRAID_INPUT_CHECK(!all.empty(), "{}: split '{}' holds no sample to generate samples on", req.manifest, req.split);
  std::vector<int64_t> rows;  // n samples spread over the split
  const int64_t k = std::min<int64_t>(n, static_cast<int64_t>(all.size()));
  for (int64_t i = 0; i < k; ++i) rows.push_back(all[static_cast<size_t>(i * static_cast<int64_t>(all.size()) / k)]);
  data::Loader loader(m, rows, p.pre, p.loader_options(false), p.targets(), p.classes);
  eval::GenerationOptions o;
  o.examples = 1 << 20;  // every answer of these samples
  o.max_tokens = 16;
  p.model->eval();
  torch::NoGradGuard ng;
  const auto res = eval::evaluate_generation(p, loader, o, "generated samples");
  std::map<std::string, std::string> prompts, inputs;  // task -> its prompt and input modality, as the recipe writes them
  const YAML::Node tasks = p.recipe.at("model").node()["tasks"];
  if (tasks && tasks.IsSequence())
    for (const auto& t : tasks) {
      if (!t["name"]) continue;
      const auto name = t["name"].as<std::string>();
      if (t["prompt"]) prompts[name] = t["prompt"].as<std::string>();
      if (t["modality"]) inputs[name] = t["modality"].as<std::string>();
    }
  std::map<std::string, const data::SampleRecord*> by_id;
  for (int64_t r : rows) by_id[m->samples()[static_cast<size_t>(r)].id] = &m->samples()[static_cast<size_t>(r)];
  auto lower_trim = [](std::string x) {
    for (auto& c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto a = x.find_first_not_of(" \t\n"), b = x.find_last_not_of(" \t\n");
    return a == std::string::npos ? std::string() : x.substr(a, b - a + 1);
  };
  json samples = json::array();
  for (const auto& ex : res.value("examples", json::array())) {
    json g = ex;
    const std::string task = ex.value("task", "");
    g["prompt"] = prompts.count(task) ? prompts[task] : "";
    g["exact"] = lower_trim(ex.value("generated", "")) == lower_trim(ex.value("reference", ""));
    auto it = by_id.find(ex.value("id", ""));
    // the input shown: the image of an image task (an audio task's recording is not drawn)
    g["image"] = it != by_id.end() && inputs[task] == "image" ? data_uri(it->second->image) : "";
    g["input"] = inputs[task];
    samples.push_back(g);
  }
  return {{"manifest", req.manifest}, {"split", req.split}, {"weights", req.weights}, {"samples", samples}};
}

bool add_robustness(RunData& run, const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path self = fs::weakly_canonical(fs::absolute(run.dir), ec);
  auto lists_run = [&](const json& j, json* entry) {
    if (!j.is_object() || !j.contains("runs") || !j["runs"].is_array()) return false;
    for (const auto& r : j["runs"]) {
      if (!r.is_object() || !r.contains("run") || !r["run"].is_string()) continue;
      std::error_code e2;
      if (fs::weakly_canonical(fs::absolute(r["run"].get<std::string>()), e2) == self) {
        *entry = r;
        return true;
      }
    }
    return false;
  };
  std::string path = file;
  json results, entry;
  if (path.empty()) {  // a bench run lives in OUT/runs/<method>/seed<k>; OUT/results.json lists it
    for (const fs::path& dir :
         {self.parent_path(), self.parent_path().parent_path(), self.parent_path().parent_path().parent_path()}) {
      const std::string cand = (dir / "results.json").string();
      if (!file_exists(cand)) continue;
      json j = json::parse(read_text_file(cand), nullptr, false);
      if (!j.is_discarded() && lists_run(j, &entry)) {
        path = cand;
        results = j;
        break;
      }
    }
    if (path.empty()) return false;
  } else {
    results = read_json_file(path);
    lists_run(results, &entry);
  }
  BRAID_INPUT_CHECK(results.is_object() && results.contains("levels") && results["levels"].is_array() &&
                        results.contains("methods") && results["methods"].is_array(),
                    "{}: not a `braid bench fusion` results.json (expected \"levels\" and \"methods\")", path);
  const auto levels = results["levels"].get<std::vector<double>>();
  const std::string metric = results.value("metric", "metric");
  std::vector<Chart> charts;
  auto chart_of = [&](const std::string& mod) -> Chart& {
    for (auto& c : charts)
      if (c.id == "robustness/" + mod) return c;
    charts.push_back({"robustness/" + mod, "test " + metric + " with noisy " + mod, metric, {}, "noise level (" + mod + ")"});
    return charts.back();
  };
  auto add_curve = [&](const std::string& mod, const std::string& name, const json& curve) {
    BRAID_INPUT_CHECK(curve.is_array() && curve.size() == levels.size(),
                      "{}: the {} curve of '{}' has {} values for {} noise levels", path, mod, name,
                      curve.is_array() ? curve.size() : 0, levels.size());
    Line l{name, {}, {}};
    for (size_t i = 0; i < levels.size(); ++i)
      if (curve[i].is_number()) l.x.push_back(levels[i]), l.y.push_back(curve[i].get<double>());
    chart_of(mod).lines.push_back(std::move(l));
  };
  for (const auto& mth : results["methods"])
    if (mth.is_object() && mth.contains("noise_curve") && mth["noise_curve"].is_object())
      for (const auto& [mod, curve] : mth["noise_curve"].items()) add_curve(mod, mth.value("method", "?"), curve);
  if (entry.is_object() && entry.contains("noise") && entry["noise"].is_object())
    for (const auto& [mod, curve] : entry["noise"].items()) add_curve(mod, "this run", curve);
  if (charts.empty()) return false;
  for (auto& c : charts) run.charts.push_back(std::move(c));
  run.robustness = {{"file", path}, {"metric", metric}, {"levels", levels},
                    {"run", entry.is_object() ? entry : json(nullptr)}};
  return true;
}

namespace {
std::string chart_figure(const Chart& c, bool svg) {
  std::string o = fmt::format("<figure class=\"chart\" id=\"chart-{}\" data-lines=\"{}\"><figcaption>{}</figcaption>",
                              esc(dom_id(c.id)), c.lines.size(), esc(c.title));
  o += svg ? "<div class=\"plot\">" + chart_svg(c) + "</div>" : std::string("<div class=\"plot\"></div>");
  return o + "</figure>\n";
}
}  // namespace

std::string render(const std::vector<RunData>& runs, bool svg) {
  BRAID_INPUT_CHECK(!runs.empty(), "braid report: no run given");
  svg = svg || !has_uplot();
  const bool compare = runs.size() > 1;
  std::string title = compare ? "comparison of " + std::to_string(runs.size()) + " runs" : runs[0].label;
  std::string o;
  o += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  o += fmt::format("<meta name=\"generator\" content=\"braid {}\">\n", BRAID_VERSION);
  o += fmt::format("<meta name=\"braid-charts\" content=\"{}\">\n", svg ? "svg" : "uplot");
  o += "<title>braid report: " + esc(title) + "</title>\n<style>" + std::string(kStyle) + "</style>\n";
  if (!svg) o += "<style>" + std::string(kUplotCss) + "</style>\n";
  o += "<script>" + std::string(kErrorTrap) + "</script>\n</head>\n<body>\n<header>\n";
  o += "<h1>braid report <small>" + esc(title) + "</small></h1>\n";
  if (compare) {
    o += "<p>runs: ";
    for (size_t i = 0; i < runs.size(); ++i) o += (i ? ", " : "") + std::string("<code>") + esc(runs[i].dir) + "</code>";
    o += "</p>\n";
  }
  const auto charts = merge_charts(runs);
  const bool curves = std::any_of(charts.begin(), charts.end(), [](const Chart& c) { return c.id.rfind("robustness/", 0) != 0; });
  const std::string final_html = final_metrics(runs), per_class_html = per_class(runs);
  o += "<nav><a href=\"#run\">run</a>";
  if (curves) o += "<a href=\"#curves\">curves</a>";
  if (!final_html.empty()) o += "<a href=\"#final\">final metrics</a>";
  if (!per_class_html.empty()) o += "<a href=\"#per-class\">per class</a>";
  const std::string confusion_html = confusion_section(runs);
  if (!confusion_html.empty()) o += "<a href=\"#confusion\">confusion</a>";
  const std::string retrieval_html = retrieval_section(runs), generated_html = generated_section(runs),
                    robustness_html = robustness_section(runs, charts, svg);
  if (!retrieval_html.empty()) o += "<a href=\"#retrieval\">retrieval</a>";
  if (!generated_html.empty()) o += "<a href=\"#generated\">generated</a>";
  if (!robustness_html.empty()) o += "<a href=\"#robustness\">robustness</a>";
  o += "<a href=\"#recipe\">recipe</a></nav>\n</header>\n";
  o += "<pre id=\"report-errors\" hidden></pre>\n";

  o += "<section id=\"run\">\n<h2>" + std::string(compare ? "Runs" : "Run") + "</h2>\n" + facts_table(runs) + "</section>\n";

  if (curves) {
    o += "<section id=\"curves\">\n<h2>Curves</h2>\n<p class=\"note\">";
    o += "From metrics.jsonl (train lines every train.log_every steps, validation lines every validation)";
    bool throughput = std::any_of(charts.begin(), charts.end(), [](const Chart& c) { return c.id.rfind("throughput", 0) == 0; });
    if (throughput)
      o += fmt::format("; throughput over the last {} logged steps, from the TensorBoard event files' wall times", kWindow);
    o += ".";
    if (svg)
      o += has_uplot() ? " Charts drawn as static SVG (--svg)."
                       : " Charts drawn as static SVG: this braid was built without uPlot (node_modules/uplot was "
                         "missing when CMake configured; run <code>npm install</code> and configure again).";
    o += " <span id=\"report-status\"></span></p>\n<div class=\"charts\">\n";
    for (const auto& c : charts)
      if (c.id.rfind("robustness/", 0) != 0) o += chart_figure(c, svg);
    o += "</div>\n</section>\n";
  }
  o += final_html + per_class_html + confusion_html + retrieval_html + generated_html + robustness_html +
       recipe_section(runs);
  o += fmt::format("<footer class=\"note\"><p>Made by <code>braid report</code> (braid {}){}.</p></footer>\n",
                   BRAID_VERSION, svg ? "" : ", charts by uPlot " + uplot_version() + " (MIT licence)");

  if (!svg && !charts.empty()) {
    o += "<script>" + std::string(kUplotJs) + "</script>\n";
    o += "<script type=\"application/json\" id=\"report-data\">{\"uplot\":" + jstr(uplot_version()) +
         ",\"colors\":" + json(kColors).dump() + ",\"dashes\":" + json(kDashes).dump() + ",\"charts\":[";
    for (size_t i = 0; i < charts.size(); ++i) o += (i ? ",\n" : "\n") + chart_json(charts[i]);
    o += "]}</script>\n<script>" + std::string(kDrawScript) + "</script>\n";
  }
  return o + "</body>\n</html>\n";
}

}  // namespace braid::cli::report
