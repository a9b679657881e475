// braid data build | data check | data filter
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/data/build/build.h"
#include "braid/data/filter.h"
#include "braid/data/preprocess.h"
#include "commands.h"

namespace braid::cli {

namespace {

struct BuildArgs {
  std::string name;
  data::BuildOptions opt{"", "", 0, 0, 2};
};

struct FilterArgs {
  std::string manifest, out;
  std::vector<std::string> keep, drop;
};

int run_filter(FilterArgs& a) {
  data::FilterOptions o;
  for (const auto& k : a.keep) o.keep.push_back(data::parse_filter_rule(k, "--keep"));
  o.drop = a.drop;
  auto r = data::filter_manifest(a.manifest, a.out, o);
  fmt::print("{}: kept {} of {} samples\n", r.out, r.kept, r.read);
  for (const auto& [split, n] : r.per_split) fmt::print("  {:<6} {}\n", split, n);
  return 0;
}

struct CheckArgs {
  std::string manifest;
  int threads = 2;
  int64_t max_errors = 20;
  bool json = false;
};

int run_build(BuildArgs& a) {
  BRAID_INPUT_CHECK(!a.opt.out_dir.empty(), "--out: where to build the dataset is required");
  auto r = data::build_dataset(a.name, a.opt);
  fmt::print("built {}: {} samples in {:.1f} s -> {}\n", a.name, r.samples, r.seconds, r.manifest);
  for (const auto& [split, n] : r.per_split) fmt::print("  {:<6} {}\n", split, n);
  for (const auto& m : r.extra_manifests) fmt::print("  also: {}\n", m);
  return 0;
}

// Decode every file the manifest names, in parallel; report every bad sample, one line each.
int run_check(CheckArgs& a) {
  configure_threads(1);
  auto m = data::Manifest::load(a.manifest);
  // preprocessing defaults; text is checked for presence only (no tokenizer needed)
  data::Preprocessor pre(data::PreprocessOptions{}, {"image", "audio", "series"}, nullptr);
  const auto& ss = m.samples();
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::vector<std::pair<int64_t, std::string>> errors;
  Progress bar("check", static_cast<int64_t>(ss.size()), "samples");
  auto work = [&] {
    for (size_t i = next++; i < ss.size() && !interrupted(); i = next++) {
      try {
        pre.process(ss[i], m.path());
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(mu);
        errors.emplace_back(ss[i].line, e.what());
      }
      ++done;
    }
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < std::max(1, a.threads); ++t) ts.emplace_back(work);
  while (done < static_cast<int64_t>(ss.size()) && !interrupted()) {
    bar.update(done);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& t : ts) t.join();
  check_interrupt();
  bar.finish();
  std::sort(errors.begin(), errors.end());
  auto counts = m.counts();
  if (a.json) {
    nlohmann::json j = {{"manifest", m.path()}, {"samples", ss.size()}, {"counts", counts}, {"errors", errors.size()}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("{}: {} samples\n", m.path(), ss.size());
    fmt::print("{:<7}{:>9}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}\n", "split", "samples", "image", "audio", "text", "series",
               "label", "target");
    for (const auto& [split, c] : counts) {
      auto g = [&](const char* k) { return c.count(k) ? c.at(k) : 0; };
      fmt::print("{:<7}{:>9}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}\n", split, g("samples"), g("image"), g("audio"), g("text"),
                 g("series"), g("label"), g("target"));
    }
  }
  if (errors.empty()) {
    fmt::print(stderr, "all {} samples decode\n", ss.size());
    return 0;
  }
  int64_t shown = 0;
  for (const auto& [line, msg] : errors) {
    if (shown++ >= a.max_errors) break;
    fmt::print(stderr, "braid: error: {}\n", msg);
  }
  fmt::print(stderr, "braid: error: {} of {} samples in {} failed to decode\n", errors.size(), ss.size(), m.path());
  return 2;
}

}  // namespace

void add_data_commands(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto* data = app.add_subcommand("data", "build embedded datasets; validate manifests");
  data->require_subcommand(1);

  auto b = std::make_shared<BuildArgs>();
  auto* build = data->add_subcommand("build", "build a dataset from locally installed packages (no download)");
  build->add_option("name", b->name, "dataset: " + fmt::format("{}", fmt::join(data::dataset_names(), ", ")))
      ->required();
  build->add_option("--out", b->opt.out_dir, "output directory (manifest.jsonl + files)")->required();
  build->add_option("--npm", b->opt.npm_root, "folder holding node_modules/ (default: search the working directory "
                                              "and the braid checkout)");
  build->add_option("--limit", b->opt.limit, "at most this many items (0 = the dataset's default size)")
      ->capture_default_str();
  build->add_option("--seed", b->opt.seed, "seed for voices, noise and splits")->capture_default_str();
  build->add_option("--threads", b->opt.threads, "parallel jobs")->capture_default_str();
  out.emplace_back(build, [b] { return run_build(*b); });

  auto c = std::make_shared<CheckArgs>();
  auto* check = data->add_subcommand("check", "validate a manifest and decode every file it names");
  check->add_option("manifest", c->manifest, "JSONL manifest")->required();
  check->add_option("--threads", c->threads, "decoding threads")->capture_default_str();
  check->add_option("--max-errors", c->max_errors, "print at most this many bad samples")->capture_default_str();
  check->add_flag("--json", c->json, "print the counts as one JSON line");
  out.emplace_back(check, [c] { return run_check(*c); });

  auto f = std::make_shared<FilterArgs>();
  auto* filter = data->add_subcommand(
      "filter", "write the samples that pass --keep rules as a new manifest (paths re-based, no data copied), "
                "optionally without some modalities: held-out-style and missing-modality test sets");
  filter->add_option("manifest", f->manifest, "JSONL manifest to read")->required();
  filter->add_option("--out", f->out, "the filtered manifest to write")->required();
  filter->add_option("--keep", f->keep,
                     "[SPLITS:]KEY~SUBSTRING (repeatable; all must hold): keep a sample of SPLITS (comma list; "
                     "default all) only when KEY (id, label, group, text, image, audio, series) contains SUBSTRING, "
                     "e.g. 'image~/google/' or 'test:image~/twitter/'");
  filter->add_option("--drop", f->drop, "remove this modality (image, audio, text, series) from every kept sample "
                                        "(repeatable)");
  out.emplace_back(filter, [f] { return run_filter(*f); });
}

}  // namespace braid::cli
