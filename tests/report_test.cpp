// `braid report`: the page of a trained run and the comparison of two, loaded in headless Chromium
// (the DOM after the page's script ran must hold every chart and line the run's metrics.jsonl has,
// the final metrics of summary.json, and no console output); the data path on a synthesized run
// (every logged value reaches the page); the static SVG charts; one-line errors for bad input.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <torch/torch.h>

#include "braid/core/safetensors.h"
#include "braid/run/run_dir.h"
#include "test_util.h"

using namespace braid::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kRecipe = R"(
threads: 1
data: {image: {size: 8}, audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 8}, text: {vocab: 30}}
model:
  name: fusion_classifier
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    audio: {name: audio_cnn, channels: [4], dim: 8}
    text: {name: text_bow, embed: 8, dim: 8}
train: {epochs: 3, batch_size: 4, log_every: 1, grad_clip: 1.0, warmup_steps: 2}
)";

// Two tiny runs of the same data, the second with another learning rate; trained once for the file.
struct Trained {
  std::string dir, manifest, a, b;
  bool ok = false;
  std::string why;
};

const Trained& trained() {
  static Trained t = [] {
    Trained t;
    t.dir = temp_dir("report");
    const std::string manifest = t.manifest = make_toy_dataset(t.dir + "/data", ToyOptions{24, 3});
    write_file(t.dir + "/r.yaml", kRecipe);
    t.a = t.dir + "/run_a";
    t.b = t.dir + "/run_b";
    for (const auto& [run, extra] : {std::pair{t.a, std::string()}, std::pair{t.b, std::string(" --set train.lr=0.002")}}) {
      auto r = run_braid("train " + q(t.dir + "/r.yaml") + " --data " + q(manifest) + " --out " + q(run) + extra);
      if (r.code != 0) {
        t.why = "train failed: " + r.err;
        return t;
      }
    }
    t.ok = true;
    return t;
  }();
  return t;
}

#define REQUIRE_TRAINED() ASSERT_TRUE(trained().ok) << trained().why

std::string chromium_path() {
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(c)) return c;
  return "";
}

// The DOM of `page` after its scripts ran (chromium --dump-dom) and chromium's log, whose console
// lines ("...:CONSOLE...") are every console message and uncaught error of the page.
struct Dom {
  std::string html, log;
};
Dom load_in_chromium(const std::string& chromium, const std::string& page, const std::string& work) {
  const std::string dom = work + "/dom.html", log = work + "/chromium.log";
  const std::string cmd = "timeout 120 " + chromium + " --headless --disable-gpu --no-sandbox --user-data-dir=" +
                          q(work + "/chromium-profile") + " --enable-logging=stderr --v=0 --virtual-time-budget=10000" +
                          " --window-size=1200,900 --dump-dom " + q("file://" + fs::absolute(page).string()) + " >" +
                          q(dom) + " 2>" + q(log);
  std::system(cmd.c_str());
  return {read_file(dom), read_file(log)};
}

std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);)
    if (l.find(":CONSOLE") != std::string::npos) out.push_back(l);
  return out;
}

// What metrics.jsonl (and the TensorBoard files, for throughput) say the page must chart:
// chart id -> the names of its lines. Train lines: loss, lr, grad_norm (when not all zero), loss
// terms (a chart per shared name head: clip holds clip, clip/image-text as "image-text"); validation lines: loss and every other number but the sample count, per split.
using ChartLines = std::map<std::string, std::set<std::string>>;
ChartLines expected_charts(const std::string& run, const std::string& prefix = "") {
  braid::run::RunDir rd(run);
  ChartLines c;
  bool grad = false;
  std::set<std::string> terms_seen;
  std::vector<std::string> terms;
  for (const auto& j : read_jsonl(rd.metrics())) {
    const std::string split = j.value("split", std::string("train"));
    for (const auto& [k, v] : j.items()) {
      if (!v.is_number() || k == "step" || k == "epoch") continue;
      if (split == "train") {
        if (k == "grad_norm") {
          grad = grad || v.get<double>() != 0;
          continue;
        }
        if (k == "loss" || k == "lr")
          c[k].insert(prefix + "train");
        else if (terms_seen.insert(k).second)
          terms.push_back(k);
      } else if (k != "n") {
        c[k == "loss" ? "loss" : "metric/" + k].insert(prefix + split);
      }
    }
  }
  // loss terms: a chart per name head (up to the first '/' or '_') that two or more terms share
  std::map<std::string, int> heads;
  auto head_of = [](const std::string& k) { return k.substr(0, k.find_first_of("/_")); };
  for (const auto& k : terms) ++heads[head_of(k)];
  for (const auto& k : terms) {
    const std::string h = head_of(k);
    if (heads[h] < 2)
      c["terms/" + k].insert(prefix + k);
    else
      c["terms/" + h].insert(prefix + (k == h ? k : k.substr(h.size() + 1)));
  }
  if (grad) c["grad_norm"].insert(prefix + "train");
  if (!rd.tensorboard_files().empty()) c["throughput"].insert(prefix + "train");
  return c;
}

// chart id -> the labels of the series uPlot drew in it (its legend, less the x series "step").
ChartLines drawn_charts(const std::string& dom) {
  ChartLines c;
  const std::regex fig(R"re(<figure class="chart" id="chart-([^"]+)")re"), label(R"re(<div class="u-label">([^<]*)</div>)re");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), fig); it != std::sregex_iterator(); ++it) {
    const size_t begin = it->position(0), end = dom.find("</figure>", begin);
    const std::string body = dom.substr(begin, end - begin);
    auto& lines = c[(*it)[1].str()];
    for (auto l = std::sregex_iterator(body.begin(), body.end(), label); l != std::sregex_iterator(); ++l)
      if ((*l)[1].str() != "step") lines.insert((*l)[1].str());
  }
  return c;
}

std::string show(const ChartLines& c) {
  std::string o;
  for (const auto& [id, lines] : c) {
    o += id + ": {";
    for (const auto& l : lines) o += l + ";";
    o += "} ";
  }
  return o;
}

// The full-precision value a table row shows in column `col` (0-based): <tr data-key="KEY">...<td ... data-value="V">
double cell(const std::string& html, const std::string& table_id, const std::string& key, int col = 0) {
  const auto t = html.find("id=\"" + table_id + "\"");
  if (t == std::string::npos) throw std::runtime_error("no table " + table_id);
  const auto row = html.find("<tr data-key=\"" + key + "\">", t);
  if (row == std::string::npos) throw std::runtime_error("no row " + key + " in " + table_id);
  const auto row_end = html.find("</tr>", row);
  size_t at = row;
  for (int i = 0; i <= col; ++i) {
    at = html.find("data-value=\"", at + 1);
    if (at == std::string::npos || at > row_end) throw std::runtime_error("row " + key + " has no column " + std::to_string(col));
  }
  at += 12;
  return std::stod(html.substr(at, html.find('"', at) - at));
}

// The last line of stderr: braid's one-line error.
void expect_one_line_error(const RunResult& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.code, 2) << r.err;
  const std::string last = last_line(r.err);
  EXPECT_EQ(last.rfind("braid: error: ", 0), 0u) << r.err;
  for (const auto& p : parts) EXPECT_NE(last.find(p), std::string::npos) << "'" << p << "' not in: " << last;
}

// A run directory without training: a recipe, `metrics` as metrics.jsonl, and a summary.
std::string synthetic_run(const std::string& dir, const std::string& metrics, const json& summary = nullptr) {
  braid::run::RunDir rd(dir);
  fs::create_directories(dir);
  write_file(rd.recipe(), "task: classify\nmodel: {name: fusion_classifier}\ntrain: {lr: 0.001}\n");
  write_file(rd.metrics(), metrics);
  if (!summary.is_null()) write_file(rd.summary(), summary.dump());
  return dir;
}

json page_data(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-data\">";
  const auto a = html.find(open);
  if (a == std::string::npos) return nullptr;
  const auto b = html.find("</script>", a);
  return json::parse(html.substr(a + open.size(), b - a - open.size()));
}

}  // namespace

// The report of one trained run in Chromium: each chart metrics.jsonl calls for, with exactly the
// lines it calls for, drawn by uPlot (or as SVG polylines in a braid built without uPlot); the final
// metrics and per-class recall of summary.json; the recipe; and not one console message.
TEST(ReportBrowser, RunPageRendersItsCurvesAndMetrics) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); report browser test skipped";
  REQUIRE_TRAINED();
  const auto& t = trained();
  TempDir w("report_page");
  const std::string page = w.file("page.html");
  auto r = run_braid("report " + q(t.a) + " --data " + q(t.manifest) + " --split val --threads 1 --out " + q(page));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_line(r.out), page);
  const auto dom = load_in_chromium(chromium, page, w.path.string());
  ASSERT_NE(dom.html.find("</html>"), std::string::npos) << "no DOM\n" << dom.log;
  EXPECT_TRUE(console_lines(dom.log).empty()) << "console output:\n" << fmt::format("{}", fmt::join(console_lines(dom.log), "\n"));
  EXPECT_NE(dom.html.find("<pre id=\"report-errors\" hidden=\"\"></pre>"), std::string::npos) << "the page caught errors";

  const ChartLines want = expected_charts(t.a);
  ASSERT_TRUE(want.count("loss") && want.at("loss").count("val") && want.count("metric/accuracy") && want.count("lr") &&
              want.count("grad_norm") && want.count("throughput"))
      << "the run lacks data this test needs: " << show(want);
  if (dom.html.find("<meta name=\"braid-charts\" content=\"uplot\">") != std::string::npos) {
    EXPECT_EQ(show(drawn_charts(dom.html)), show(want));
    size_t canvases = 0;
    for (auto at = dom.html.find("<canvas"); at != std::string::npos; at = dom.html.find("<canvas", at + 1)) ++canvases;
    EXPECT_EQ(canvases, want.size());
  } else {  // built without uPlot: static SVG, one polyline per line
    size_t lines = 0, polylines = 0;
    for (const auto& [id, l] : want) lines += l.size();
    for (auto at = dom.html.find("<polyline class=\"line\""); at != std::string::npos; at = dom.html.find("<polyline class=\"line\"", at + 1))
      ++polylines;
    EXPECT_EQ(polylines, lines);
  }

  braid::run::RunDir rd(t.a);
  const json summary = json::parse(read_file(rd.summary()));
  int checked = 0;
  for (const auto& [k, v] : summary["val"].items()) {
    if (!v.is_number()) continue;
    EXPECT_DOUBLE_EQ(cell(dom.html, "final-metrics", k), v.get<double>()) << k;
    ++checked;
  }
  EXPECT_GE(checked, 3);  // accuracy, macro_f1, loss, n
  EXPECT_NE(dom.html.find(fmt::format("{:.4f}</td>", summary["val"]["accuracy"].get<double>())), std::string::npos);
  EXPECT_EQ(cell(dom.html, "facts-table", "steps"), summary["steps"].get<double>());
  for (const auto& [name, v] : summary["val"]["per_class"].items())
    EXPECT_DOUBLE_EQ(cell(dom.html, "per-class-table", name), v["recall"].get<double>()) << name;
  // the confusion matrix over the val split: each row sums to the split's samples of that class (counted
  // here from the manifest), and its diagonal share is the per-class recall that training's final
  // validation wrote to summary.json
  std::map<std::string, int64_t> val_counts;
  int64_t val_n = 0;
  for (const auto& j : read_jsonl(t.manifest))
    if (j.value("split", "") == "val") ++val_counts[j.at("label").get<std::string>()], ++val_n;
  const auto cm = dom.html.find("<table class=\"confusion\" id=\"confusion\">");
  ASSERT_NE(cm, std::string::npos) << "no confusion matrix";
  const std::string table = dom.html.substr(cm, dom.html.find("</table>", cm) - cm);
  const std::regex row(R"re(<tr data-key="([^"]+)">(.*?)</tr>)re"), count(R"re(data-count="(\d+)")re");
  int64_t total = 0;
  size_t rows = 0;
  for (auto it = std::sregex_iterator(table.begin(), table.end(), row); it != std::sregex_iterator(); ++it, ++rows) {
    const std::string name = (*it)[1].str(), cells = (*it)[2].str();
    int64_t sum = 0;
    std::vector<int64_t> v;
    for (auto c = std::sregex_iterator(cells.begin(), cells.end(), count); c != std::sregex_iterator(); ++c)
      v.push_back(std::stoll((*c)[1].str())), sum += v.back();
    EXPECT_EQ(sum, val_counts[name]) << name;
    ASSERT_EQ(v.size(), 3u) << name;  // one column per class
    total += sum;
    if (summary["val"]["per_class"].contains(name))
      EXPECT_NEAR(static_cast<double>(v.at(rows)) / sum, summary["val"]["per_class"][name]["recall"].get<double>(), 1e-12)
          << name;
  }
  EXPECT_EQ(rows, 3u);
  EXPECT_EQ(total, val_n);

  // the recipe, as written (its learning-rate line)
  const std::string recipe = read_file(rd.recipe());
  const auto lr = recipe.find("lr:");
  ASSERT_NE(lr, std::string::npos);
  EXPECT_NE(dom.html.find(recipe.substr(lr, recipe.find('\n', lr) - lr)), std::string::npos);
}

// Two runs compared: every chart overlays both runs' lines, the final metrics table has one column
// per run holding that run's value, and the recipe diff shows the one changed setting.
TEST(ReportBrowser, ComparePageOverlaysRunsAndDiffsRecipes) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); report browser test skipped";
  REQUIRE_TRAINED();
  const auto& t = trained();
  TempDir w("report_compare");
  const std::string page = w.file("compare.html");
  auto r = run_braid("report --compare " + q(t.a) + " " + q(t.b) + " --data " + q(t.manifest) + " --threads 1 --out " +
                     q(page));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto dom = load_in_chromium(chromium, page, w.path.string());
  ASSERT_NE(dom.html.find("</html>"), std::string::npos) << "no DOM\n" << dom.log;
  EXPECT_TRUE(console_lines(dom.log).empty()) << fmt::format("{}", fmt::join(console_lines(dom.log), "\n"));

  ChartLines want = expected_charts(t.a, "run_a: ");
  for (const auto& [id, lines] : expected_charts(t.b, "run_b: ")) want[id].insert(lines.begin(), lines.end());
  if (dom.html.find("<meta name=\"braid-charts\" content=\"uplot\">") != std::string::npos)
    EXPECT_EQ(show(drawn_charts(dom.html)), show(want));
  EXPECT_EQ(want.at("loss").size(), 4u) << show(want);

  for (int col = 0; col < 2; ++col) {
    const json s = json::parse(read_file(braid::run::RunDir(col == 0 ? t.a : t.b).summary()));
    EXPECT_DOUBLE_EQ(cell(dom.html, "final-metrics", "accuracy", col), s["val"]["accuracy"].get<double>());
    EXPECT_DOUBLE_EQ(cell(dom.html, "final-metrics", "loss", col), s["val"]["loss"].get<double>());
  }
  // a confusion matrix per run, each on the val split's samples
  for (const char* id : {"confusion-0", "confusion-1"}) EXPECT_NE(dom.html.find(id), std::string::npos) << id;
  // recipe diff: the learning rate is the only setting that differs (one line out, one in)
  const std::string diff = dom.html.substr(dom.html.find("id=\"recipe\""), 3000);
  EXPECT_NE(diff.find("data-changed=\"2\""), std::string::npos) << diff;
  const std::regex changed(R"re(<span class="del">- [^<]*\blr: 0\.001\b[^<]*</span><span class="add">\+ [^<]*\blr: 0\.002\b)re");
  EXPECT_TRUE(std::regex_search(diff, changed)) << diff;
}

// The data path, without a browser: on a synthesized run of 1000 logged steps every value reaches
// the page's chart data at its step (train loss every step, validation every 100), in order; the
// SVG page draws the same points.
TEST(Report, EveryLoggedValueReachesThePage) {
  TempDir w("report_data");
  std::string metrics;
  auto loss = [](int s) { return 2.0 * std::exp(-s / 300.0) + 0.01 * (s % 7); };
  auto acc = [](int s) { return 0.3 + 0.6 * s / 1000.0; };
  for (int s = 1; s <= 1000; ++s) {
    metrics += fmt::format(R"({{"step":{},"epoch":1,"loss":{:.17g},"lr":{:.17g},"grad_norm":0.0,)"
                           R"("clip":{},"clip/a-b":{},"temperature":0.07,"ppl_a":3,"ppl_b":4}})" "\n", s, loss(s),
                           1e-3 * s / 1000, s, -s);
    if (s % 100 == 0)
      metrics += fmt::format(R"({{"step":{},"epoch":1,"split":"val","loss":{},"accuracy":{:.17g},"n":50,)"
                             R"("retrieval":{{"a->b":{{"r1":{},"n":50}},"b->a":{{"r1":{},"n":50}}}}}})" "\n",
                             s, 1.5, acc(s), s / 2000.0, s / 4000.0);
  }
  const json summary = {{"steps", 1000}, {"seconds", 12.5}, {"global_batch", 32},
                        {"val", {{"accuracy", acc(1000)}, {"loss", 1.5}, {"n", 50},
                                 {"retrieval", {{"a->b", {{"r1", 0.5}, {"n", 50}}}, {"b->a", {{"r1", 0.25}, {"n", 50}}}}}}}};
  const std::string run = synthetic_run(w.file("syn"), metrics, summary);
  const std::string page = w.file("p.html");
  auto r = run_braid("report " + q(run) + " --out " + q(page));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string html = read_file(page);
  const json d = page_data(html);
  if (d.is_null()) GTEST_SKIP() << "this braid was built without uPlot: no chart data in the page (SVG checked below)";
  std::map<std::string, json> charts;
  for (const auto& c : d["charts"]) charts[c["id"].get<std::string>()] = c;
  // grad_norm all zero: no chart; no TensorBoard files: no throughput; sample counts (n) are no curves
  ASSERT_EQ(charts.size(), 7u) << d.dump().substr(0, 400);
  const auto& l = charts.at("loss");
  ASSERT_EQ(l["x"].size(), 1000u);
  ASSERT_EQ(l["lines"].size(), 2u);
  EXPECT_EQ(l["lines"][0]["name"], "train");
  EXPECT_EQ(l["lines"][1]["name"], "val");
  for (int s = 1; s <= 1000; ++s) {
    ASSERT_EQ(l["x"][s - 1].get<double>(), s);
    ASSERT_NEAR(l["lines"][0]["y"][s - 1].get<double>(), loss(s), 1e-6 * loss(s)) << "step " << s;
    if (s % 100 == 0)
      ASSERT_EQ(l["lines"][1]["y"][s - 1].get<double>(), 1.5) << "step " << s;
    else
      ASSERT_TRUE(l["lines"][1]["y"][s - 1].is_null()) << "step " << s;
  }
  const auto& a = charts.at("metric/accuracy");
  ASSERT_EQ(a["x"].size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(a["lines"][0]["y"][i].get<double>(), acc(100 * (i + 1)), 1e-6);
  // nested metrics: one chart per group and leaf, one line per direction
  const auto& r1 = charts.at("metric/retrieval/r1");
  ASSERT_EQ(r1["lines"].size(), 2u);
  EXPECT_EQ(r1["lines"][0]["name"], "val: a->b");
  EXPECT_EQ(r1["lines"][1]["name"], "val: b->a");
  EXPECT_NEAR(r1["lines"][1]["y"][9].get<double>(), 0.25, 1e-9);
  EXPECT_DOUBLE_EQ(cell(html, "final-retrieval", "b-&gt;a", 1), 0.25);  // columns n, r1 (summary.json's key order)
  // loss terms: a chart per head
  const auto& clip = charts.at("terms/clip");
  ASSERT_EQ(clip["lines"].size(), 2u);
  EXPECT_EQ(clip["lines"][1]["name"], "a-b");
  EXPECT_EQ(clip["lines"][1]["y"][499].get<double>(), -500);
  EXPECT_EQ(charts.at("terms/temperature")["lines"].size(), 1u);
  const auto& ppl = charts.at("terms/ppl");  // ppl_a, ppl_b share the head "ppl"
  ASSERT_EQ(ppl["lines"].size(), 2u);
  EXPECT_EQ(ppl["lines"][0]["name"], "a");
  EXPECT_EQ(ppl["lines"][1]["y"][0].get<double>(), 4);
  EXPECT_EQ(charts.at("lr")["x"].size(), 1000u);
  EXPECT_DOUBLE_EQ(cell(html, "facts-table", "samples_per_second"), 1000 * 32 / 12.5);
  EXPECT_DOUBLE_EQ(cell(html, "final-metrics", "accuracy"), acc(1000));

  // --svg: no script, the same lines as polylines of 1000 and 10 points
  auto s = run_braid("report " + q(run) + " --svg --out " + q(page));
  ASSERT_EQ(s.code, 0) << s.err;
  const std::string svg = read_file(page);
  EXPECT_EQ(svg.find("report-data"), std::string::npos);
  EXPECT_EQ(svg.find("uPlot"), std::string::npos);
  const std::regex poly(R"re(<polyline class="line" data-name="([^"]*)"[^>]* points="([^"]*)")re");
  std::vector<std::pair<std::string, size_t>> got;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it) {
    const std::string pts = (*it)[2].str();
    got.emplace_back((*it)[1].str(), std::count(pts.begin(), pts.end(), ' '));
  }
  const std::vector<std::pair<std::string, size_t>> want = {{"train", 1000}, {"val", 10}, {"val", 10},
                                                             {"val: a-&gt;b", 10}, {"val: b-&gt;a", 10}, {"clip", 1000},
                                                             {"a-b", 1000}, {"a", 1000}, {"b", 1000},
                                                             {"temperature", 1000}, {"train", 1000}};
  // loss (train, val), accuracy (val), retrieval r1 (two directions), the loss terms (clip: clip, a-b; ppl: a,
  // b; temperature), learning rate (train)
  EXPECT_EQ(got, want);
}

// Bad input: one line naming the file (and the line of metrics.jsonl); a torn last line (a live or
// killed run mid-write) is skipped, not an error.
TEST(Report, BadInputIsOneLineNamingFileAndLine) {
  TempDir w("report_bad");
  const std::string out = " --out " + q(w.file("x.html"));
  expect_one_line_error(run_braid("report " + q(w.file("nope")) + out), {"nope", "not a directory"});
  fs::create_directories(w.file("empty"));
  expect_one_line_error(run_braid("report " + q(w.file("empty")) + out),
                        {"not a run directory", braid::run::RunDir(w.file("empty")).recipe()});
  const std::string good = R"({"step":1,"epoch":1,"loss":2.0,"lr":0.001})" "\n";
  const std::string metrics = braid::run::RunDir(w.file("garbled")).metrics();
  synthetic_run(w.file("garbled"), good + good + "{\"step\":3,\"loss\":\n" + good);
  expect_one_line_error(run_braid("report " + q(w.file("garbled")) + out), {metrics + ":3", "not valid JSON"});
  synthetic_run(w.file("blank"), good + "\n" + good);
  expect_one_line_error(run_braid("report " + q(w.file("blank")) + out),
                        {braid::run::RunDir(w.file("blank")).metrics() + ":2", "empty line"});
  synthetic_run(w.file("nostep"), good + R"({"epoch":1,"loss":2.0})" "\n");
  expect_one_line_error(run_braid("report " + q(w.file("nostep")) + out), {"metrics.jsonl:2", "step"});
  synthetic_run(w.file("array"), good + "[1,2]\n");
  expect_one_line_error(run_braid("report " + q(w.file("array")) + out), {"metrics.jsonl:2", "JSON object"});
  synthetic_run(w.file("badsummary"), good, nullptr);
  write_file(braid::run::RunDir(w.file("badsummary")).summary(), "{\"steps\": ");
  expect_one_line_error(run_braid("report " + q(w.file("badsummary")) + out), {"summary.json", "not valid JSON"});
  // a torn last line is skipped
  synthetic_run(w.file("torn"), good + good + "{\"step\":3,\"lo");
  auto torn = run_braid("report " + q(w.file("torn")) + out);
  EXPECT_EQ(torn.code, 0) << torn.err;
  EXPECT_NE(torn.err.find("metrics.jsonl:3: incomplete last line skipped"), std::string::npos) << torn.err;
  // arguments
  synthetic_run(w.file("ok"), good);
  expect_one_line_error(run_braid("report " + q(w.file("ok")) + " " + q(w.file("ok")) + out), {"--compare"});
  expect_one_line_error(run_braid("report --compare " + q(w.file("ok")) + out), {"two or more"});
  EXPECT_NE(run_braid("report").code, 0);
}

// --data: a manifest that is not there, or a split without samples, is one line naming it.
TEST(Report, ConfusionInputErrorsNameTheManifestOrSplit) {
  REQUIRE_TRAINED();
  const auto& t = trained();
  TempDir w("report_cm_bad");
  const std::string out = " --threads 1 --out " + q(w.file("x.html"));
  expect_one_line_error(run_braid("report " + q(t.a) + " --data " + q(w.file("nope.jsonl")) + out), {"nope.jsonl"});
  expect_one_line_error(run_braid("report " + q(t.a) + " --data " + q(t.manifest) + " --split nosuch" + out), {"nosuch"});
}

namespace {

// A tiny align run (image, text, audio towers, CLIP loss) and a tiny generative run on one toy dataset;
// the align run sits in a fake `braid bench fusion` output folder (OUT/runs/late/seed0) below OUT/results.json.
const char* kAlignRecipe = R"(
task: align
threads: 1
data: {image: {size: 8}, audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 8}, text: {vocab: 30}}
model:
  name: dual_tower
  modalities: [image, text, audio]
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    audio: {name: audio_cnn, channels: [4], dim: 8}
    text: {name: text_bow, embed: 8, dim: 8}
  embed_dim: 8
  loss: clip
  anchor: image
train: {max_steps: 4, batch_size: 8, log_every: 1}
)";

const char* kGenerateRecipe = R"(
task: generate
threads: 1
data: {image: {size: 8}, text: {vocab: 40}}
model:
  name: mllm
  modalities: [image, text]
  tokens: 2
  projector: {name: linear}
  lm: {dim: 16, layers: 1, heads: 2, kv_heads: 1, hidden: 24, max_seq: 48}
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
  tasks:
    - {name: group, modality: image, prompt: "which group is this?", answer: label}
train: {max_steps: 4, batch_size: 8}
)";

struct TrainedMore {
  std::string dir, manifest, bench, align, gen;
  bool ok = false;
  std::string why;
};

const TrainedMore& trained_more() {
  static TrainedMore t = [] {
    TrainedMore t;
    t.dir = temp_dir("report_more");
    t.manifest = make_toy_dataset(t.dir + "/data", ToyOptions{32, 3});
    write_file(t.dir + "/align.yaml", kAlignRecipe);
    write_file(t.dir + "/gen.yaml", kGenerateRecipe);
    t.bench = t.dir + "/bench";
    t.align = t.bench + "/runs/late/seed0";  // where `braid bench fusion` puts its runs
    t.gen = t.dir + "/gen";
    for (const auto& [recipe, run] : {std::pair{t.dir + "/align.yaml", t.align}, std::pair{t.dir + "/gen.yaml", t.gen}}) {
      auto r = run_braid("train " + q(recipe) + " --data " + q(t.manifest) + " --out " + q(run));
      if (r.code != 0) {
        t.why = "train failed: " + r.err;
        return t;
      }
    }
    // what `braid bench fusion` writes (apps/braid/tools/fusion_bench.cpp): levels, per-method mean curves, runs
    const json results = {{"levels", {0.0, 0.5, 1.0}}, {"metric", "accuracy"}, {"modalities", {"image", "text"}},
                          {"methods", {{{"method", "late"}, {"noise_curve", {{"image", {0.9, 0.6, 0.3}}, {"text", {0.9, 0.8, 0.7}}}}},
                                       {{"method", "early"}, {"noise_curve", {{"image", {0.8, 0.5, 0.2}}, {"text", {0.8, 0.7, 0.6}}}}}}},
                          {"runs", {{{"run", t.align}, {"method", "late"}, {"noise", {{"image", {0.91, 0.62, 0.33}}, {"text", {0.9, 0.81, 0.7}}}}}}}};
    write_file(t.bench + "/results.json", results.dump());
    t.ok = true;
    return t;
  }();
  return t;
}

// The text between `open` (first match at or after `from`) and the next `close`.
std::string between(const std::string& s, const std::string& open, const std::string& close, size_t from = 0) {
  const auto a = s.find(open, from);
  if (a == std::string::npos) return "";
  const auto b = s.find(close, a + open.size());
  return s.substr(a + open.size(), b == std::string::npos ? std::string::npos : b - a - open.size());
}

}  // namespace

// An align run's report with --data: query images of the split, each with the 5 texts and 5 other images
// whose `braid embed` vectors are closest by cosine (recounted here from the CLI's embeddings), images inlined
// as data: URIs; and the robustness curves of the bench results.json found above the run (OUT/runs/late/seed0),
// drawn with one line per method plus this run's.
TEST(ReportBrowser, RetrievalExamplesAndRobustnessCurves) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); report browser test skipped";
  const auto& t = trained_more();
  ASSERT_TRUE(t.ok) << t.why;
  TempDir w("report_retrieval");
  // the CLI's embeddings of the val split: the reference the page's hits are recounted from
  std::map<std::string, std::pair<torch::Tensor, std::vector<std::string>>> emb;  // modality -> (vectors, ids)
  for (const char* m : {"image", "text"}) {
    const std::string out = w.file(std::string(m) + ".safetensors");
    auto e = run_braid("embed " + q(t.align) + " --data " + q(t.manifest) + " --split val --modality " + m + " --out " + q(out));
    if (e.code != 0 && e.err.find("embed") != std::string::npos && e.err.find("not") != std::string::npos)
      GTEST_SKIP() << "braid built without the serve layer: " << e.err;
    ASSERT_EQ(e.code, 0) << e.err;
    const auto vec = braid::read_safetensors(out).at("vectors");
    std::vector<std::string> ids;
    const json side = json::parse(read_file(w.file(std::string(m) + ".json")));
    for (const auto& en : side["entries"]) ids.push_back(en["id"]);
    emb[m] = {vec, ids};
  }
  const std::string page = w.file("page.html");
  auto r = run_braid("report " + q(t.align) + " --data " + q(t.manifest) + " --split val --threads 1 --out " + q(page));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto dom = load_in_chromium(chromium, page, w.path.string());
  ASSERT_NE(dom.html.find("</html>"), std::string::npos) << "no DOM\n" << dom.log;
  EXPECT_TRUE(console_lines(dom.log).empty()) << fmt::format("{}", fmt::join(console_lines(dom.log), "\n"));
  EXPECT_NE(dom.html.find("<pre id=\"report-errors\" hidden=\"\"></pre>"), std::string::npos) << "the page caught errors";

  const auto& [img, img_ids] = emb.at("image");
  const auto& [txt, txt_ids] = emb.at("text");
  const std::regex query(R"re(<div class="query" data-id="([^"]+)">)re"),
      hit(R"re(<li data-id="([^"]+)" data-score="([^"]+)")re"), src(R"re(<img src="([^"]*)")re");
  int queries = 0;
  for (auto it = std::sregex_iterator(dom.html.begin(), dom.html.end(), query); it != std::sregex_iterator(); ++it) {
    ++queries;
    const std::string id = (*it)[1].str();
    const size_t qi = std::find(img_ids.begin(), img_ids.end(), id) - img_ids.begin();
    ASSERT_LT(qi, img_ids.size()) << id << " is not a val image";
    const std::string block = dom.html.substr(it->position(0), dom.html.find("</div>", it->position(0)) - it->position(0));
    // the hits of one list against the reference ranking: same ids in order (ties aside), same scores
    auto check = [&](const std::string& list, const torch::Tensor& gallery, const std::vector<std::string>& ids, bool skip_self) {
      auto sims = torch::matmul(gallery, img[qi]);
      if (skip_self) sims[qi] = -1e9;
      auto [vals, idx] = sims.topk(std::min<int64_t>(5, gallery.size(0) - (skip_self ? 1 : 0)));
      const std::string part = between(block, "<ol class=\"" + list + "\">", "</ol>");
      int k = 0;
      for (auto h = std::sregex_iterator(part.begin(), part.end(), hit); h != std::sregex_iterator(); ++h, ++k) {
        ASSERT_LT(k, vals.size(0)) << list;
        const double score = std::stod((*h)[2].str());
        EXPECT_NEAR(score, vals[k].item<double>(), 1e-5) << id << " " << list << " hit " << k;
        // the id at this rank, unless another hit ties its score
        if (k + 1 >= vals.size(0) || std::fabs(vals[k].item<double>() - vals[k + 1].item<double>()) > 1e-6)
          if (k == 0 || std::fabs(vals[k].item<double>() - vals[k - 1].item<double>()) > 1e-6)
            EXPECT_EQ((*h)[1].str(), ids[idx[k].item<int64_t>()]) << id << " " << list << " hit " << k;
      }
      EXPECT_EQ(k, vals.size(0)) << id << " " << list;
    };
    check("text-hits", txt, txt_ids, false);
    check("image-hits", img, img_ids, true);
    // the query and its 5 image hits, inlined
    int images = 0;
    for (auto s = std::sregex_iterator(block.begin(), block.end(), src); s != std::sregex_iterator(); ++s, ++images)
      EXPECT_EQ((*s)[1].str().rfind("data:image/png;base64,iVBORw0KGgo", 0), 0u) << (*s)[1].str().substr(0, 40);
    EXPECT_EQ(images, 6) << id;
  }
  EXPECT_EQ(queries, std::min<int>(4, static_cast<int>(img_ids.size())));

  // the robustness charts of OUT/results.json: per modality, the two methods and this run
  ASSERT_NE(dom.html.find("<section id=\"robustness\">"), std::string::npos);
  ASSERT_NE(dom.html.find(t.bench + "/results.json"), std::string::npos);
  if (dom.html.find("<meta name=\"braid-charts\" content=\"uplot\">") != std::string::npos) {
    const auto drawn = drawn_charts(dom.html);
    for (const char* m : {"robustness/image", "robustness/text"}) {
      ASSERT_TRUE(drawn.count(m)) << show(drawn);
      EXPECT_EQ(drawn.at(m), (std::set<std::string>{"late", "early", "this run", std::string("noise level (") + (m + 11) + ")"}))
          << m;
    }
    const json data = page_data(dom.html);
    for (const auto& c : data["charts"])
      if (c["id"] == "robustness/image") {
        EXPECT_EQ(c["x"], json({0.0, 0.5, 1.0}));
        EXPECT_EQ(c["lines"][2]["name"], "this run");
        EXPECT_EQ(c["lines"][2]["y"], json({0.91, 0.62, 0.33}));
      }
  }
  // no results.json to be found: no section; a given file that is not one: a one-line error
  auto plain = run_braid("report " + q(t.gen) + " --out " + q(w.file("gen.html")));
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(read_file(w.file("gen.html")).find("id=\"robustness\""), std::string::npos);
  write_file(w.file("notbench.json"), "{\"a\": 1}");
  expect_one_line_error(run_braid("report " + q(t.align) + " --robustness " + q(w.file("notbench.json")) + " --out " +
                                  q(w.file("x.html"))),
                        {"notbench.json", "not a `braid bench fusion` results.json"});
}

// A generative run's report with --data: a row per generated answer of samples spread over the split, each
// holding the task's prompt, the answer `braid generate` gives for that image and task, the manifest's
// reference, and the image inlined.
TEST(ReportBrowser, GeneratedSamples) {
  const std::string chromium = chromium_path();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); report browser test skipped";
  const auto& t = trained_more();
  ASSERT_TRUE(t.ok) << t.why;
  TempDir w("report_generated");
  const std::string page = w.file("page.html");
  auto r = run_braid("report " + q(t.gen) + " --data " + q(t.manifest) + " --split val --threads 1 --out " + q(page));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto dom = load_in_chromium(chromium, page, w.path.string());
  ASSERT_NE(dom.html.find("</html>"), std::string::npos) << "no DOM\n" << dom.log;
  EXPECT_TRUE(console_lines(dom.log).empty()) << fmt::format("{}", fmt::join(console_lines(dom.log), "\n"));
  std::map<std::string, json> samples;
  for (const auto& j : read_jsonl(t.manifest)) samples[j["id"]] = j;
  const std::string table = between(dom.html, "<table class=\"generated\" id=\"generated\">", "</table>");
  ASSERT_FALSE(table.empty()) << "no generated samples";
  const std::regex row(R"re(<tr data-id="([^"]+)" data-task="([^"]+)"><td><img src="(data:image/png;base64,[^"]+)"[^>]*></td><td>[^<]*</td><td>[^<]*</td><td class="prompt">([^<]*)</td><td class="gen">([^<]*)</td><td class="ref">([^<]*)</td>)re");
  auto unesc = [](std::string s) {
    for (auto [a, b] : {std::pair<std::string, std::string>{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}})
      for (size_t p; (p = s.find(a)) != std::string::npos;) s.replace(p, a.size(), b);
    return s;
  };
  int rows = 0;
  for (auto it = std::sregex_iterator(table.begin(), table.end(), row); it != std::sregex_iterator(); ++it, ++rows) {
    const std::string id = (*it)[1].str();
    ASSERT_TRUE(samples.count(id)) << id;
    const json& s = samples[id];
    EXPECT_EQ(s["split"], "val") << id;
    EXPECT_EQ((*it)[2].str(), "group");
    EXPECT_EQ(unesc((*it)[4].str()), "which group is this?");
    EXPECT_EQ(unesc((*it)[6].str()), s["label"].get<std::string>()) << id;
    const std::string image = (fs::path(t.manifest).parent_path() / s["image"].get<std::string>()).string();
    auto g = run_braid("generate " + q(t.gen) + " --image " + q(image) + " --task group --max-tokens 16 --json");
    ASSERT_EQ(g.code, 0) << g.err;
    EXPECT_EQ(unesc((*it)[5].str()), last_json_line(g.out)["text"].get<std::string>()) << id;
  }
  int64_t val = 0;
  for (const auto& [id, s] : samples) val += s["split"] == "val";
  EXPECT_EQ(rows, std::min<int64_t>(6, val));
}
