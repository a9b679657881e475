#include "tools/fusion_bench.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "braid/core/error.h"
#include "tools/batch_rows.h"
#include "braid/core/fs.h"
#include "braid/core/process.h"
#include "braid/core/runtime.h"
#include "braid/eval/plot.h"
#include "braid/eval/robustness.h"
#include "braid/nn/fusion.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"

namespace braid::tools {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> all_fusion_methods(const std::vector<std::string>& modalities) {
  std::vector<std::string> m;
  for (const auto& mod : modalities) m.push_back("uni:" + mod);
  m.push_back("early");
  for (const auto& n : nn::fusion_registry().names()) m.push_back(n);
  for (const char* l : {"late_mean", "late_weighted", "late_poe"}) m.push_back(l);
  return m;
}

std::vector<std::string> temporal_methods() { return {"mult", "mfn", "mctn"}; }

namespace {
bool is_temporal(const std::string& m) {
  auto t = temporal_methods();
  return std::find(t.begin(), t.end(), m) != t.end();
}
}  // namespace

std::vector<std::string> expand_methods(const std::vector<std::string>& requested,
                                        const std::vector<std::string>& modalities) {
  std::vector<std::string> out;
  auto add = [&](const std::string& m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  for (const auto& m : requested) {
    if (m == "all") {
      for (const auto& a : all_fusion_methods(modalities)) add(a);
    } else if (m == "temporal") {
      for (const auto& t : temporal_methods()) add(t);
    } else {
      bool ok = m.rfind("uni:", 0) == 0
                    ? std::find(modalities.begin(), modalities.end(), m.substr(4)) != modalities.end()
                    : m == "early" || nn::fusion_registry().contains(m) || m.rfind("late_", 0) == 0 || is_temporal(m);
      BRAID_INPUT_CHECK(ok, "--methods: unknown method '{}' (valid: all, temporal, {}, {})", m,
                        fmt::join(all_fusion_methods(modalities), ", "), fmt::join(temporal_methods(), ", "));
      add(m);
    }
  }
  BRAID_INPUT_CHECK(!out.empty(), "--methods: nothing to run");
  return out;
}

std::string model_recipe_path(const std::string& method, const std::string& base_recipe,
                              const std::map<std::string, std::string>& model_recipes) {
  BRAID_INPUT_CHECK(is_temporal(method), "model_recipe_path: '{}' is not a temporal method ({})", method,
                    fmt::join(temporal_methods(), ", "));
  std::string path;
  if (auto it = model_recipes.find(method); it != model_recipes.end()) {
    path = it->second;
    BRAID_INPUT_CHECK(file_exists(path), "--model-recipe {}={}: no such file", method, path);
  } else {
    const fs::path base(base_recipe);
    const std::string stem = base.stem().string();
    path = (base.parent_path() / (stem.substr(0, stem.find('_')) + "_" + method + ".yaml")).string();
    BRAID_INPUT_CHECK(file_exists(path),
                      "--methods {}: its model comes from {}, which does not exist; pass --model-recipe {}=RECIPE",
                      method, path, method);
  }
  auto model = Config::from_file(path).at("model");
  const auto name = model.get<std::string>("name", "");
  BRAID_INPUT_CHECK(name == method, "{}: model.name is '{}', expected '{}' for --methods {}", path, name, method, method);
  return path;
}

std::vector<std::string> method_overrides(const std::string& method, const std::vector<std::string>& modalities,
                                          const std::string& base_recipe,
                                          const std::map<std::string, std::string>& model_recipes) {
  if (is_temporal(method)) {
    // the whole model section, as one flow-style YAML value (comments dropped)
    auto model = Config::from_file(model_recipe_path(method, base_recipe, model_recipes)).node()["model"];
    YAML::Emitter e;
    e.SetMapFormat(YAML::Flow);
    e.SetSeqFormat(YAML::Flow);
    e << model;
    return {std::string("model=") + e.c_str()};
  }
  if (method.rfind("uni:", 0) == 0) return {"model.modalities=[" + method.substr(4) + "]"};
  if (method == "early") {
    // data-level fusion: the raw inputs, concatenated, feed the one learned network (the head)
    std::vector<std::string> s = {"model.fusion.name=concat"};
    for (const auto& m : modalities) s.push_back("model.encoders." + m + "={name: raw}");
    return s;
  }
  return {"model.fusion.name=" + method};
}

namespace {

// The benchmark's own record of a training child process (wall seconds, peak RSS), beside its run.
std::string cost_file(const std::string& dir) { return dir + "/bench_cost.json"; }

struct Stat {
  double mean = 0, std = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / (v.size() - 1)) : 0.0;
  return s;
}

std::string last_line_of(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty()) last = line;
  return last;
}

std::string dir_name(const std::string& method) {
  std::string d = method;
  for (char& c : d)
    if (c == ':') c = '_';
  return d;
}

// The test split as batches, for every modality the data has, with the reference preprocessing.
std::vector<Batch> make_batches(std::shared_ptr<const data::Manifest> m, const run::Pipeline& ref,
                                      const std::vector<std::string>& modalities, const data::Noise& noise,
                                      const std::string& split) {
  auto opt = ref.pre->options();
  opt.noise = noise;
  auto pre = std::make_shared<data::Preprocessor>(opt, modalities, ref.tokenizer);
  auto lo = ref.loader_options(false);
  lo.cache = false;
  data::Loader loader(m, m->split_indices(split), pre, lo, ref.targets(), ref.classes);
  loader.start_epoch(0);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

double latency_ms(run::Pipeline& p, const Batch& b, int reps) {
  torch::NoGradGuard ng;
  p.model->eval();
  auto batch = b.to(p.device);
  p.model->forward(batch);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    p.model->forward(batch);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2] / b.size();
}

// The modalities the model reads at test time: MCTN reads only its source (the target is a
// training-time translation target); every other model reads all of its modalities.
std::vector<std::string> read_at_test(const run::Pipeline& p) {
  auto model = p.recipe.at("model");
  if (model.get<std::string>("name", "") == "mctn") return {model.get<std::string>("source", "")};
  return p.modalities;
}

}  // namespace

json run_fusion_bench(const FusionBenchOptions& o) {
  BRAID_INPUT_CHECK(o.seeds >= 1, "--seeds must be at least 1");
  BRAID_INPUT_CHECK(!o.out.empty(), "--out: a results folder is required");
  const int threads = configure_threads(o.threads);
  auto manifest = std::make_shared<data::Manifest>(data::Manifest::load(o.data));
  std::vector<std::string> mods;
  for (const auto& m : data::all_modalities())
    for (auto i : manifest->split_indices("train"))
      if (manifest->samples()[i].has(m)) {
        mods.push_back(m);
        break;
      }
  const std::vector<std::string> methods = expand_methods(o.methods, mods);
  for (const auto& [m, path] : o.model_recipes)
    BRAID_INPUT_CHECK(is_temporal(m), "--model-recipe {}={}: '{}' is not a temporal method (valid: {})", m, path, m,
                      fmt::join(temporal_methods(), ", "));
  // every method's overrides before any training starts, so a missing model recipe stops the run here
  std::map<std::string, std::vector<std::string>> overrides;
  for (const auto& m : methods) overrides[m] = method_overrides(m, mods, o.recipe, o.model_recipes);
  make_dirs(o.out + "/runs");

  // 1. training runs, each a child process; `jobs` of them at a time
  const std::string exe = self_exe();
  const int jobs = std::max(1, o.jobs);
  const int run_threads = o.threads > 0 ? o.threads : std::max(1, threads / jobs);
  const int64_t total = static_cast<int64_t>(methods.size()) * o.seeds;
  json runs = json::array();
  for (const auto& method : methods)
    for (int seed = 0; seed < o.seeds; ++seed)
      runs.push_back({{"method", method}, {"seed", seed},
                      {"run", o.out + "/runs/" + dir_name(method) + "/seed" + std::to_string(seed)}});
  std::mutex mu;
  int64_t next = 0, started = 0;
  std::exception_ptr failure;
  auto train_one = [&](json& r) {
    const std::string method = r["method"], dir = r["run"];
    const int seed = r["seed"];
    const run::RunDir rd(dir);
    if (file_exists(rd.summary()) && file_exists(cost_file(dir))) return;
    std::vector<std::string> argv = {exe, "train", o.recipe, "--data", o.data, "--out", dir,
                                     "--seed", std::to_string(seed), "--threads", std::to_string(run_threads)};
    if (rd.has_checkpoint()) {
      argv.push_back("--resume");
    } else {
      braid::remove_tree(dir);
      for (const auto& s : o.sets) argv.insert(argv.end(), {"--set", s});
      for (const auto& s : overrides.at(method)) argv.insert(argv.end(), {"--set", s});
    }
    make_dirs(fs::path(dir).parent_path().string());
    {
      std::lock_guard<std::mutex> lk(mu);
      spdlog::info("[{}/{}] training {} seed {}", ++started, total, method, seed);
    }
    auto pr = run_process(argv, dir + ".log");
    if (pr.exit_code != 0) {
      std::lock_guard<std::mutex> lk(mu);
      r["error"] = last_line_of(dir + ".log");
      spdlog::warn("{} seed {} failed (exit {}): {}", method, seed, pr.exit_code, r["error"].get<std::string>());
      return;
    }
    atomic_write_text(cost_file(dir), json{{"seconds", pr.seconds}, {"max_rss_kb", pr.max_rss_kb}}.dump() + "\n");
  };
  auto worker = [&] {
    while (true) {
      size_t i;
      {
        std::lock_guard<std::mutex> lk(mu);
        if (failure || next >= static_cast<int64_t>(runs.size())) return;
        i = static_cast<size_t>(next++);
      }
      try {
        train_one(runs[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!failure) failure = std::current_exception();
        return;
      }
    }
  };
  if (jobs > 1) spdlog::info("{} training runs at a time, {} thread(s) each", jobs, run_threads);
  std::vector<std::thread> pool;
  for (int j = 0; j < jobs; ++j) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);

  // 2. test sets: clean, and each modality with noise at every level (built once, shared)
  // The reference run (its preprocessing and tokenizer build the sets): the first finished run that
  // reads the most modalities (a temporal model may read fewer than the data has, e.g. no text).
  const std::string ref_run = [&] {
    std::string best;
    size_t most = 0;
    for (const auto& r : runs) {
      if (r.contains("error")) continue;
      const size_t n = run::open_pipeline(r["run"].get<std::string>()).modalities.size();
      if (n > most) most = n, best = r["run"].get<std::string>();
    }
    if (best.empty()) input_error("bench fusion: every training run failed; see the .log files in {}/runs", o.out);
    return best;
  }();
  auto ref = run::open_pipeline(ref_run);
  const run::RunDir ref_rd(ref_run);
  std::string ref_tok = file_exists(ref_rd.tokenizer()) ? read_text_file(ref_rd.tokenizer()) : "";
  const std::vector<std::string> set_mods = ref.modalities;
  spdlog::info("building the {} sets: clean and {} noise levels per modality", o.split, o.levels.size());
  auto clean = make_batches(manifest, ref, set_mods, {}, o.split);
  std::map<std::pair<std::string, double>, std::vector<Batch>> noisy;
  for (const auto& m : set_mods)
    for (double lv : o.levels) {
      if (lv <= 0) continue;
      check_interrupt();
      auto only = make_batches(manifest, ref, {m}, data::Noise{m, lv, 1234}, o.split);
      auto sets = clean;
      for (size_t i = 0; i < sets.size(); ++i) sets[i].mods[m] = only[i].mods[m];
      noisy[{m, lv}] = std::move(sets);
    }

  // 3. score every run
  const bool classify = ref.task == run::Task::Classify;
  const char* key = classify ? "accuracy" : "ccc";
  const char* key2 = classify ? "macro_f1" : "mse";
  for (auto& r : runs) {
    if (r.contains("error")) continue;
    check_interrupt();
    const std::string dir = r["run"];
    const run::RunDir rd(dir);
    auto p = run::open_run(dir);
    for (const auto& mod : p.modalities)
      BRAID_INPUT_CHECK(std::find(set_mods.begin(), set_mods.end(), mod) != set_mods.end(),
                        "bench fusion: {} reads {}, which the reference run {} (the one that reads the most "
                        "modalities: {}) does not; the shared test sets lack it",
                        dir, mod, ref_run, fmt::join(set_mods, ", "));
    if (p.tokenizer && read_text_file(rd.tokenizer()) != ref_tok)
      throw std::runtime_error(dir + ": its tokenizer differs from the reference run's; the shared test sets do not apply");
    auto m = eval::evaluate_batches(p, clean);
    r["clean"] = {{key, m.value(key, 0.0)}, {key2, m.value(key2, 0.0)}};
    json noise = json::object(), unread = json::array();
    const auto reads = read_at_test(p);
    for (const auto& mod : p.modalities) {
      if (std::find(reads.begin(), reads.end(), mod) == reads.end()) {
        unread.push_back(mod);  // noise on it cannot change the output: no curve, "–" in the table
        continue;
      }
      std::vector<double> curve;
      for (double lv : o.levels)
        curve.push_back(lv <= 0 ? m.value(key, 0.0) : eval::evaluate_batches(p, noisy[{mod, lv}]).value(key, 0.0));
      noise[mod] = curve;
    }
    r["noise"] = noise;
    if (!unread.empty()) r["not_read_at_test"] = unread;
    json missing = json::object();
    for (const auto& subset : eval::nonempty_subsets(p.modalities)) {
      std::vector<std::string> drop;
      for (const auto& x : p.modalities)
        if (std::find(subset.begin(), subset.end(), x) == subset.end()) drop.push_back(x);
      missing[fmt::format("{}", fmt::join(subset, "+"))] = eval::evaluate_batches(p, clean, drop).value(key, 0.0);
    }
    r["missing"] = missing;
    auto summary = json::parse(read_text_file(rd.summary()));
    auto cost = json::parse(read_text_file(cost_file(dir)));
    auto recipe = Config::from_file(rd.recipe());
    int64_t epochs = std::max<int64_t>(1, recipe.at("train").get<int64_t>("epochs", 1));
    r["cost"] = {{"parameters", summary.value("parameters", 0)},
                 {"train_seconds_per_epoch", summary.value("seconds", 0.0) / epochs},
                 {"peak_rss_mb", cost.value("max_rss_kb", 0) / 1024.0},
                 {"latency_ms_b1", latency_ms(p, first_rows(clean[0], 1), 30)},
                 {"latency_ms_b64", latency_ms(p, first_rows(clean[0], 64), 5)}};
  }

  // 4. aggregate per method
  json table = json::array();
  std::map<std::string, std::vector<double>> rel_by_mod, clean_by_mod;
  std::map<std::string, std::vector<std::string>> names_by_mod;
  for (const auto& method : methods) {
    std::vector<const json*> rs;
    for (const auto& r : runs)
      if (r["method"] == method && !r.contains("error")) rs.push_back(&r);
    json row = {{"method", method}, {"seeds_ok", rs.size()}};
    if (rs.empty()) {
      table.push_back(row);
      continue;
    }
    auto col = [&](auto get) {
      std::vector<double> v;
      for (auto* r : rs) v.push_back(get(*r));
      return stat(v);
    };
    auto a = col([&](const json& r) { return r["clean"][key].get<double>(); });
    auto f = col([&](const json& r) { return r["clean"][key2].get<double>(); });
    row[key] = {a.mean, a.std};
    row[key2] = {f.mean, f.std};
    json curves = json::object(), rel = json::object();
    for (auto& [mod, _] : (*rs[0])["noise"].items()) {
      std::vector<double> mean_curve(o.levels.size(), 0.0);
      for (auto* r : rs)
        for (size_t i = 0; i < o.levels.size(); ++i) mean_curve[i] += (*r)["noise"][mod][i].get<double>() / rs.size();
      curves[mod] = mean_curve;
      double rr = eval::relative_robustness(mean_curve);
      rel[mod] = rr;
      rel_by_mod[mod].push_back(rr);
      clean_by_mod[mod].push_back(a.mean);
      names_by_mod[mod].push_back(method);
    }
    if (rs[0]->contains("not_read_at_test")) row["not_read_at_test"] = (*rs[0])["not_read_at_test"];
    row["noise_curve"] = curves;
    row["relative_robustness"] = rel;
    json miss = json::object();
    for (auto& [subset, _] : (*rs[0])["missing"].items())
      miss[subset] = col([&](const json& r) { return r["missing"][subset].get<double>(); }).mean;
    row["missing"] = miss;
    json cost = json::object();
    for (const char* c : {"parameters", "train_seconds_per_epoch", "peak_rss_mb", "latency_ms_b1", "latency_ms_b64"})
      cost[c] = col([&](const json& r) { return r["cost"][c].get<double>(); }).mean;
    row["cost"] = cost;
    table.push_back(row);
  }
  for (auto& [mod, rels] : rel_by_mod) {
    auto eff = eval::effective_robustness(clean_by_mod[mod], rels);
    for (size_t i = 0; i < eff.size(); ++i)
      for (auto& row : table)
        if (row["method"] == names_by_mod[mod][i]) row["effective_robustness"][mod] = eff[i];
  }

  // 5. report
  json result = {{"data", o.data}, {"recipe", o.recipe}, {"seeds", o.seeds}, {"threads", threads}, {"jobs", jobs},
                 {"run_threads", run_threads}, {"split", o.split},
                 {"levels", o.levels}, {"modalities", mods}, {"metric", key}, {"methods", table}, {"runs", runs}};
  atomic_write_text(o.out + "/results.json", result.dump(1) + "\n");
  std::string md = fmt::format(
      "# Fusion benchmark\n\ndata `{}`, recipe `{}`, {} seed(s), {} training run(s) at a time with {} thread(s) each "
      "(scoring on {}), split `{}`\n\n",
      o.data, o.recipe, o.seeds, jobs, run_threads, threads, o.split);
  md += fmt::format("## Clean test {} (mean ± std over seeds)\n\n| method | {} | {} | seeds |\n|---|---:|---:|---:|\n", key, key, key2);
  for (const auto& row : table) {
    if (!row.contains(key)) {
      md += fmt::format("| {} | failed | | 0 |\n", row["method"].get<std::string>());
      continue;
    }
    md += fmt::format("| {} | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} | {} |\n", row["method"].get<std::string>(),
                      row[key][0].get<double>(), row[key][1].get<double>(), row[key2][0].get<double>(),
                      row[key2][1].get<double>(), row["seeds_ok"].get<int>());
  }
  md += "\n## Robustness to test-time noise (relative / effective robustness per noised modality)\n\n| method |";
  for (const auto& m : mods) md += fmt::format(" {} rel | {} eff |", m, m);
  md += "\n|---|";
  for (size_t i = 0; i < mods.size() * 2; ++i) md += "---:|";
  md += "\n";
  for (const auto& row : table) {
    if (!row.contains(key)) continue;
    md += "| " + row["method"].get<std::string>() + " |";
    for (const auto& m : mods) {
      if (row["relative_robustness"].contains(m))
        md += fmt::format(" {:.3f} | {:+.3f} |", row["relative_robustness"][m].get<double>(),
                          row["effective_robustness"][m].get<double>());
      else
        md += " – | – |";
    }
    md += "\n";
  }
  md += "\nRelative robustness: mean test " + std::string(key) + " over noise levels " +
        fmt::format("{}", fmt::join(o.levels, ", ")) +
        " on that modality (MultiBench). Effective: relative minus the least-squares line through all methods' "
        "(clean, relative) points. Curves: `noise_<modality>.svg`.\n";
  for (const auto& row : table)
    if (row.contains("not_read_at_test"))
      md += fmt::format("\n{}: – for {}: the model does not read it at test time (mctn classifies from its source "
                        "alone; the target is a training-time translation target), so noise on it changes nothing "
                        "and is not scored.\n",
                        row["method"].get<std::string>(),
                        fmt::join(row["not_read_at_test"].get<std::vector<std::string>>(), ", "));
  md += "\n## Missing modalities (test " + std::string(key) + " with only the listed modalities present)\n\n";
  auto subsets = eval::nonempty_subsets(mods);
  md += "| method |";
  for (const auto& s : subsets) md += fmt::format(" {} |", fmt::join(s, "+"));
  md += "\n|---|";
  for (size_t i = 0; i < subsets.size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& row : table) {
    if (!row.contains(key)) continue;
    md += "| " + row["method"].get<std::string>() + " |";
    for (const auto& s : subsets) {
      std::string k = fmt::format("{}", fmt::join(s, "+"));
      md += row["missing"].contains(k) ? fmt::format(" {:.3f} |", row["missing"][k].get<double>()) : " – |";
    }
    md += "\n";
  }
  md += "\n## Cost (mean over seeds)\n\n| method | parameters | train s/epoch | peak RSS (MB) | latency/sample b1 (ms) | latency/sample b64 (ms) |\n|---|---:|---:|---:|---:|---:|\n";
  for (const auto& row : table) {
    if (!row.contains("cost")) continue;
    const auto& c = row["cost"];
    md += fmt::format("| {} | {:.0f} | {:.2f} | {:.0f} | {:.3f} | {:.4f} |\n", row["method"].get<std::string>(),
                      c["parameters"].get<double>(), c["train_seconds_per_epoch"].get<double>(),
                      c["peak_rss_mb"].get<double>(), c["latency_ms_b1"].get<double>(), c["latency_ms_b64"].get<double>());
  }
  atomic_write_text(o.out + "/results.md", md);
  for (const auto& m : mods) {
    std::vector<eval::Series> series;
    for (const auto& row : table)
      if (row.contains("noise_curve") && row["noise_curve"].contains(m))
        series.push_back({row["method"], o.levels, row["noise_curve"][m].get<std::vector<double>>()});
    atomic_write_text(o.out + "/noise_" + m + ".svg",
                      eval::svg_line_chart("test " + std::string(key) + " vs noise on " + m, "noise level", key, series));
  }
  return result;
}

}  // namespace braid::tools
