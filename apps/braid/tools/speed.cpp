#include "tools/speed.h"
#include "braid/train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>

#include <unistd.h>

#include "braid/core/error.h"
#include "tools/batch_rows.h"
#include "tools/stats.h"
#include "braid/core/fs.h"
#include "braid/core/op_profile.h"
#include "braid/core/runtime.h"
#include "braid/data/npy.h"
#include "braid/eval/evaluate.h"
#include "braid/nn/fused.h"
#include "braid/nn/infer_threads.h"
#include "braid/nn/prepack.h"
#include "braid/objectives/supervised.h"
#include "braid/train/optim.h"

namespace braid::tools {

using namespace braid::train;  // RunOptions, batch_loss, the optimizer and clipping

namespace {

// A YAML tree as JSON (scalars typed as bool, integer, number or string), for peers without a YAML parser.
nlohmann::json yaml_json(const YAML::Node& n) {
  if (n.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_json(kv.second);
    return j;
  }
  if (n.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : n) j.push_back(yaml_json(v));
    return j;
  }
  if (!n.IsScalar()) return nullptr;
  const std::string s = n.Scalar();
  if (s == "true" || s == "false") return s == "true";
  if (n.Tag() != "!") {  // unquoted: a number when it parses as one
    char* end = nullptr;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && *end == '\0') return i;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return d;
  }
  return s;
}

// Runs `work` under LibTorch's Kineto profiler (CPU ops; CUDA kernels too on a CUDA device) and
// saves the Chrome trace to `path` (bench/peer/trace_table.py sums its kernels).
void write_profile(const std::string& path, bool cuda, const std::function<void()>& work) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  std::set<ActivityType> activities{ActivityType::CPU};
  if (cuda) activities.insert(ActivityType::CUDA);
  auto fail = [](const c10::Error& e) {
    input_error("bench speed --profile: this LibTorch cannot write a trace ({})", e.what_without_backtrace());
  };
  try {
    prof::prepareProfiler(config, activities);
    prof::enableProfiler(config, activities);
  } catch (const c10::Error& e) {
    fail(e);
  }
  work();
  if (cuda) torch::cuda::synchronize();
  auto result = prof::disableProfiler();
  try {
    result->save(path);  // Debian's LibTorch 1.13 is built without Kineto: it fails here
  } catch (const c10::Error& e) {
    fail(e);
  }
  spdlog::info("profiler trace written to {}", path);
}

}  // namespace

nlohmann::json measure_speed(const RunOptions& ro, const SpeedOptions& so) {
  BRAID_INPUT_CHECK(so.steps > 0 && so.repeats > 0 && so.warmup >= 0, "bench speed: steps and repeats must be positive");
  BRAID_INPUT_CHECK(so.op_clock == "wall" || so.op_clock == "cpu", "--op-clock: expected wall or cpu, got '{}'",
                    so.op_clock);
  Config recipe = Config::from_file(ro.recipe);
  for (const auto& s : ro.sets) {
    auto eq = s.find('=');
    BRAID_INPUT_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected key.path=value", s);
    recipe.set_path(s.substr(0, eq), s.substr(eq + 1));
  }
  if (ro.threads >= 0) recipe.set_path("threads", std::to_string(ro.threads));
  if (!ro.device.empty()) recipe.set_path("device", ro.device);
  const int threads = configure_threads(static_cast<int>(recipe.get<int64_t>("threads", 0)));
  nn::set_fused_kernels(so.fused);
  torch::manual_seed(static_cast<uint64_t>(recipe.get<int64_t>("seed", 0)));
  std::string mp = ro.data.empty() ? resolve_relative(ro.recipe, recipe.at("data").get<std::string>("manifest", ""))
                                   : ro.data;
  auto manifest = std::make_shared<data::Manifest>(data::Manifest::load(mp));
  const std::string tmp = ro.out.empty() ? (std::filesystem::temp_directory_path() / fmt::format("braid_speed_run.{}", ::getpid())).string() : ro.out;
  braid::remove_tree(tmp);
  recipe.mark_subtree("train");  // only lr, weight_decay, grad_clip and batch_size matter here
  auto p = run::create_pipeline(recipe, *manifest, tmp);
  auto to = recipe.at("train");
  const double lr = to.get<double>("lr", 1e-3), wd = to.get<double>("weight_decay", 0.01), clip = to.get<double>("grad_clip", 1.0);
  auto loader = p.loader(manifest, recipe.at("data").get<std::string>("train_split", "train"), true);
  loader->start_epoch(0);
  auto first = loader->next();
  BRAID_INPUT_CHECK(first.has_value(), "bench speed: the train split is empty");
  auto batch = first->to(p.device);
  const int64_t B = batch.size();
  auto& model = *p.model;
  const int64_t params = models::count_parameters(model);

  if (!so.dump_dir.empty()) {
    make_dirs(so.dump_dir);
    for (const auto& [k, m] : first->mods) {
      if (!m.data.defined()) continue;
      data::write_npy(so.dump_dir + "/" + k + ".npy", m.data.contiguous());
      data::write_npy(so.dump_dir + "/" + k + "_lengths.npy", m.lengths.contiguous());
      data::write_npy(so.dump_dir + "/" + k + "_present.npy", m.present.to(torch::kUInt8).contiguous());
    }
    if (first->labels.defined()) data::write_npy(so.dump_dir + "/labels.npy", first->labels.contiguous());
    nlohmann::json mj = {{"model", YAML::Dump(recipe.at("model").node())},
                         {"model_config", yaml_json(recipe.at("model").node())}, {"parameters", params},
                         {"outputs", p.outputs}, {"modalities", p.modalities}, {"lr", lr}, {"weight_decay", wd},
                         {"grad_clip", clip}, {"threads", threads}, {"device", p.device.str()},
                         {"precision", precision_name(p.precision)}};
    if (p.tokenizer) mj["vocab_size"] = p.tokenizer->vocab_size();
    atomic_write_text(so.dump_dir + "/model.json", mj.dump(1) + "\n");
  }

  // --precision int8: int8 packing where the CPU runs it, fp32 packing when forced off, refused elsewhere
  const bool int8 = so.int8 && nn::resolve_int8("bench speed");
  const bool pack = so.prepack || so.int8;
  const int64_t prepacked = pack ? nn::prepack_linears(model, int8 ? nn::PackPrecision::Int8 : nn::PackPrecision::FP32) : 0;
  const int64_t prepacked_int8 = nn::prepacked_int8_count();
  BRAID_INPUT_CHECK(!pack || prepacked > 0, "bench speed --prepack: {}",
                    nn::prepack_available() ? "the model has no float32 CPU Linear layers to pack"
                                            : "this braid was built without oneDNN (libdnnl-dev)");
  const auto params_list = model.parameters();
  MultiTensorAdamW opt(params_list, torch::optim::AdamWOptions(lr).weight_decay(wd), to.get<std::string>("adamw", "auto"));
  auto step = [&] {
    auto loss = batch_loss(p, batch);
    zero_grads(params_list);
    loss.backward();
    if (clip > 0) clip_grad_norm(params_list, clip);
    opt.step();
  };
  using clock = std::chrono::steady_clock;
  const bool cuda = p.device.is_cuda();
  // inference: on the CPU through nn::infer_rows, as embed / search / serve (serve::Embedder) run it
  auto forward = [&](const Batch& b) {
    auto rows = [&](int64_t r0, int64_t r1) {
      AutocastScope ac(p.device.type(), p.precision);
      return model.forward(nn::batch_rows(b, r0, r1));
    };
    return cuda ? rows(0, b.size()) : nn::infer_rows(b.size(), rows);
  };
  // CUDA runs asynchronously: wait for the device before reading the clock
  auto secs = [cuda](clock::time_point a) {
    if (cuda) torch::cuda::synchronize();
    return std::chrono::duration<double>(clock::now() - a).count();
  };
  model.train();
  if (!so.infer_only)
    for (int64_t i = 0; i < so.warmup; ++i) step();
  if (cuda) torch::cuda::synchronize();
  std::vector<double> train_rates, infer_b, infer_1;
  nlohmann::json runs = nlohmann::json::array();
  auto one = first_rows(batch, 1);
  for (int64_t r = 0; r < so.repeats; ++r) {
    check_interrupt();
    auto t0 = clock::now();
    if (!so.infer_only) {
      model.train();
      t0 = clock::now();
      for (int64_t i = 0; i < so.steps; ++i) step();
      train_rates.push_back(so.steps / secs(t0));
    }
    model.eval();
    torch::NoGradGuard ng;
    c10::optional<c10::InferenceMode> im;
    if (pack) im.emplace();
    forward(batch);  // warm
    if (cuda) torch::cuda::synchronize();
    t0 = clock::now();
    for (int64_t i = 0; i < so.steps; ++i) forward(batch);
    infer_b.push_back(so.steps * B / secs(t0));
    t0 = clock::now();
    const int64_t n1 = so.steps * 4;
    for (int64_t i = 0; i < n1; ++i) forward(one);
    infer_1.push_back(n1 / secs(t0));
    runs.push_back({{"infer_samples_per_s_b64", infer_b.back()}, {"infer_samples_per_s_b1", infer_1.back()}});
    if (!so.infer_only) runs.back()["train_steps_per_s"] = train_rates.back();
  }
  nlohmann::json op_profile;
  if (so.op_profile) {  // per-op self times of the same inference loop (core/op_profile.h), after the timed runs
    prof::set_clock(so.op_clock == "cpu" ? prof::Clock::ThreadCpu : prof::Clock::Wall);
    model.eval();
    torch::NoGradGuard ng;
    c10::optional<c10::InferenceMode> im;
    if (pack) im.emplace();  // as the timed loop (--prepack or --precision int8)
    auto profile_rows = [&](const Batch& b, int64_t n) {
      forward(b);  // warm, untimed
      if (cuda) torch::cuda::synchronize();
      prof::reset();
      prof::set_enabled(true);
      for (int64_t i = 0; i < n; ++i) {
        BRAID_OP_SCOPE("forward (other)");
        forward(b);
        if (cuda) torch::cuda::synchronize();
      }
      prof::set_enabled(false);
      auto rows = prof::rows();
      nlohmann::json j = {{"forwards", n}, {"batch_size", b.size()}, {"clock", so.op_clock}, {"table", prof::table(rows, n)},
                          {"rows", nlohmann::json::array()}};
      for (const auto& r : rows)
        j["rows"].push_back({{"op", r.op}, {"calls", r.calls}, {"self_ms", r.self_ms / n}, {"total_ms", r.total_ms / n}});
      prof::reset();
      return j;
    };
    op_profile = {{"batch", profile_rows(batch, so.steps)}, {"one", profile_rows(one, so.steps * 4)}};
  }
  if (!so.profile.empty()) {
    model.train();
    write_profile(so.profile, cuda, [&] {
      for (int i = 0; i < 2; ++i) step();
      model.eval();
      torch::NoGradGuard ng;
      for (int i = 0; i < 2; ++i) forward(batch);
    });
  }
  if (pack) nn::clear_prepacked();
  braid::remove_tree(tmp);
  nlohmann::json out = {{"infer_samples_per_s_b64", median(infer_b)},
                        {"infer_samples_per_s_b1", median(infer_1)}, {"runs", runs}, {"threads", threads},
                        {"parameters", params}, {"batch_size", B}, {"steps", so.steps}, {"repeats", so.repeats},
                        {"device", p.device.str()}, {"precision", int8 ? "int8" : precision_name(p.precision)}, {"adamw", opt.impl()}, {"fused", so.fused},
                        {"prepacked", prepacked}, {"prepacked_int8", prepacked_int8}};
  if (!so.infer_only) out["train_steps_per_s"] = median(train_rates);
  if (so.op_profile) out["op_profile"] = op_profile;
  return out;
}

nlohmann::json measure_gemm(int64_t n, int threads, int repeats) {
  BRAID_INPUT_CHECK(n >= 16 && n <= 16384, "--n: expected a matrix size in [16, 16384], got {}", n);
  BRAID_INPUT_CHECK(repeats >= 1, "--repeats: expected at least 1, got {}", repeats);
  const int used = configure_threads(threads);
  torch::NoGradGuard ng;
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  const double flop = 2.0 * n * n * n;
  // enough products per timed run that one run lasts ~0.05 s at 100 GFLOP/s (at most 200)
  const int64_t reps = std::clamp<int64_t>(static_cast<int64_t>(5e9 / flop), 1, 200);
  torch::mm_out(c, a, b);
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < reps; ++i) torch::mm_out(c, a, b);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(flop * reps / s / 1e9);
  }
  auto sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  return {{"gflops", sorted[sorted.size() / 2]}, {"runs", rates}, {"n", n}, {"threads", used},
          {"openblas_coretype", core ? core : "unset"}};
}

}  // namespace braid::tools
