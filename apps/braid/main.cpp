// braid — multimodal learning from one binary. See README.md and docs/cli.md.
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <dlfcn.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>

#include "braid/core/cpu_features.h"
#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/data/build/speech.h"
#include "braid/nn/prepack.h"
#include "braid/nn/fused.h"
#include "braid/nn/fused_infer.h"
#include "braid/nn/infer_threads.h"
#include "braid/train/distributed.h"
#include "commands.h"

namespace {

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::vector<std::string> g_invocation;

// The OpenMP wait policy (issue 19, docs/cli.md "Threads"). libgomp's idle threads spin for a while
// (GOMP_SPINCOUNT, 300000 polls by default) before they sleep; on a machine whose cores are busy with other
// processes a spinning thread holds a core its team-mates need, and a 2-thread forward ran 7-14x slower
// than with passive waits (docs/results/engine.md). libgomp reads the setting once, in its own ELF
// constructor, before main (a setenv in .preinit_array is undone by libc's start-up; constructor order
// between libraries is unspecified). So when the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT,
// braid runs itself again (same arguments, /proc/self/exe) with kOmpPolicyVar=kOmpPolicyValue and
// kOmpPolicyMarker set: ~0.25 s more start-up (libtorch is loaded twice), skipped for --help and
// --version. The marker stops a loop; children inherit both. A user's own setting is always kept.
// Training is the exception (`train`, `quickstart`, and `bench` unless --infer-only, which times training as the
// PyTorch peers do): a step is hundreds of short parallel regions back to back, and a futex wake-up at each cost
// 10-15 % of the image job's step on a quiet 2-core host (docs/results/engine.md), so those commands keep
// libgomp's own waits (spin, then sleep), as PyTorch does.
constexpr const char* kOmpPolicyVar = "OMP_WAIT_POLICY";
constexpr const char* kOmpPolicyValue = "passive";
constexpr const char* kOmpPolicyMarker = "BRAID_OMP_POLICY_SET";

// OpenBLAS's kernels (issue 19). Debian 12's OpenBLAS 0.3.21 does not know CPUs newer than it (an Intel Xeon
// of model 207 among them) and falls back to its generic Prescott kernels: a 1024^2 sgemm at 16 GFLOP/s
// instead of 90 with OPENBLAS_CORETYPE=SkylakeX on one thread (docs/results/engine.md). OpenBLAS reads the
// variable at load, so when the user has not set it and OpenBLAS reports a pre-AVX core on a CPU with AVX-512
// (AVX2), braid names SkylakeX (Haswell) for its re-exec. BRAID_OPENBLAS_CORETYPE=0 keeps OpenBLAS's own choice.
constexpr const char* kBlasCoreVar = "OPENBLAS_CORETYPE";

const char* openblas_core_to_set() {
  const char* opt = std::getenv("BRAID_OPENBLAS_CORETYPE");
  if (std::getenv(kBlasCoreVar) || (opt && std::string(opt) == "0")) return nullptr;
  using CoreName = char* (*)();
  auto corename = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!corename || !corename()) return nullptr;  // another BLAS
  const std::string core = corename();
  static const char* const generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Unknown"};
  if (std::none_of(std::begin(generic), std::end(generic), [&](const char* g) { return strcasecmp(g, core.c_str()) == 0; }))
    return nullptr;
  const auto f = braid::detected_cpu_features();
  return f.avx512f ? "SkylakeX" : f.avx2 ? "Haswell" : nullptr;
}

// The subcommand: the first argument after the program's name that is not an option ("" when there is none).
std::string subcommand(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i)
    if (!args[i].empty() && args[i][0] != '-') return args[i];
  return "";
}

// Training, and benchmarks that may time it (every `bench` but the inference-only runs), keep libgomp's waits.
bool keeps_spin_waits(const std::vector<std::string>& args) {
  const std::string cmd = subcommand(args);
  if (cmd == "train" || cmd == "quickstart") return true;
  return cmd == "bench" && std::find(args.begin(), args.end(), "--infer-only") == args.end();
}

void apply_startup_env(int argc, char** argv) {
  if (std::getenv(kOmpPolicyMarker)) return;  // set by braid's own re-exec: no loop
  for (int i = 1; i < argc; ++i)  // nothing runs in parallel for these
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--version")) return;
  const bool omp = !std::getenv(kOmpPolicyVar) && !std::getenv("GOMP_SPINCOUNT") &&
                   !keeps_spin_waits(std::vector<std::string>(argv, argv + argc));
  const char* core = openblas_core_to_set();
  if (!omp && !core) return;
  if (omp) ::setenv(kOmpPolicyVar, kOmpPolicyValue, 1);
  if (core) ::setenv(kBlasCoreVar, core, 1), ::setenv("BRAID_OPENBLAS_CORETYPE_SET", core, 1);
  ::setenv(kOmpPolicyMarker, omp ? "1" : "0", 1);
  ::execv("/proc/self/exe", argv);
  // no /proc, or exec refused: go on with the libraries' defaults (the marker stays: no retry)
  if (omp) ::unsetenv(kOmpPolicyVar);
  if (core) ::unsetenv(kBlasCoreVar), ::unsetenv("BRAID_OPENBLAS_CORETYPE_SET");
}

// One line for `braid -v`: the policy in effect and where it came from.
std::string omp_wait_policy_line() {
  const char* w = std::getenv(kOmpPolicyVar);
  const char* s = std::getenv("GOMP_SPINCOUNT");
  const char* m = std::getenv(kOmpPolicyMarker);
  const char* by = m && std::string(m) == "1" && w && std::string(w) == kOmpPolicyValue
                       ? "braid's default; set OMP_WAIT_POLICY or GOMP_SPINCOUNT to choose"
                       : (w || s) ? "from the environment"
                       : keeps_spin_waits(g_invocation)
                           ? "libgomp's default: braid's choice for training and benchmarks"
                           : "libgomp's default";
  const char* b = std::getenv(kBlasCoreVar);
  const char* bset = std::getenv("BRAID_OPENBLAS_CORETYPE_SET");
  return fmt::format("OpenMP waits: OMP_WAIT_POLICY={} GOMP_SPINCOUNT={} ({}); OpenBLAS core: {} ({})", w ? w : "(unset)",
                     s ? s : "(unset)", by, b ? b : "OpenBLAS's own choice",
                     bset && b && std::string(bset) == b ? "braid's choice: OpenBLAS saw a generic core"
                                                         : b ? "from the environment" : "OPENBLAS_CORETYPE unset");
}

}  // namespace

const std::vector<std::string>& braid::cli::invocation() { return g_invocation; }

int main(int argc, char** argv) {
  apply_startup_env(argc, argv);  // returns only when no re-exec was needed (or possible)
  g_invocation.assign(argv, argv + argc);
  // Environment overrides are read here, in apps/, and passed down (the library reads none).
  const char* malloc_mode = std::getenv("BRAID_MALLOC");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  auto switched_off = [](const char* var) {  // VAR=0 turns a CPU feature off (docs/cli.md)
    const char* v = std::getenv(var);
    return v && std::string(v) == "0";
  };
  // BRAID_CPU_BF16=0: `precision: auto` treats the CPU as having no native bf16
  if (switched_off("BRAID_CPU_BF16")) braid::set_cpu_bf16_allowed(false);
  // BRAID_CPU_INT8=0: `--precision int8` falls back to fp32 packed weights, saying so (nn/prepack.h)
  if (switched_off("BRAID_CPU_INT8")) braid::nn::set_int8_allowed(false, "BRAID_CPU_INT8=0");
  // BRAID_FUSED_INFER=0: pre-packed inference without the fused LayerNorm / attention kernels (nn/fused_infer.h)
  if (switched_off("BRAID_FUSED_INFER")) braid::nn::set_fused_infer(false);
  // BRAID_INFER_SPLIT=0: inference forwards run op by op on all threads instead of split by rows (nn/infer_threads.h)
  if (switched_off("BRAID_INFER_SPLIT")) braid::nn::set_infer_split(false);
  // BRAID_FUSED_TRAIN=0: the Transformer block trains with ATen's dropout, residual adds, GELU and attention (nn/fused.h)
  if (switched_off("BRAID_FUSED_TRAIN")) braid::nn::set_fused_train(false);
  // BRAID_ESPEAK_HELPER=0: the speech builders run the espeak-ng program per utterance (data/build/speech.h)
  if (switched_off("BRAID_ESPEAK_HELPER")) braid::data::build::set_speech_helper(false);
  braid::configure_allocator(!(malloc_mode && std::string(malloc_mode) == "default") &&
                             !(tunables && std::strstr(tunables, "malloc")));
  CLI::App app{"braid: multimodal learning (text, images, audio, time series) in one C++ binary", "braid"};
  app.set_version_flag("--version", std::string("braid ") + BRAID_VERSION);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "more log lines");
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, braid::cli::Runner>> cmds;
  braid::cli::add_quickstart_command(app, cmds);
  braid::cli::add_data_commands(app, cmds);
  braid::cli::add_tokenizer_command(app, cmds);
  braid::cli::add_train_command(app, cmds);
  braid::cli::add_eval_command(app, cmds);
  braid::cli::add_bench_commands(app, cmds);
  braid::cli::add_list_command(app, cmds);
  braid::cli::add_report_command(app, cmds);
  braid::cli::add_import_command(app, cmds);
  braid::cli::add_export_command(app, cmds);
  braid::cli::add_tokenize_image_command(app, cmds);
#if BRAID_WITH_SERVE
  braid::cli::add_serve_commands(app, cmds);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    if (rc != 0) std::fprintf(stderr, "Run 'braid --help' (or 'braid <command> --help') for usage.\n");
    return rc;
  }
  braid::setup_logging(verbose);
  spdlog::debug("{}", omp_wait_policy_line());
  braid::install_interrupt_handler();
  try {
    for (auto& [sub, run] : cmds)
      if (sub->parsed()) return run();
    return 1;
  } catch (const braid::Interrupted&) {
    std::fprintf(stderr, "braid: interrupted\n");
    return 130;
  } catch (const braid::train::PeerLost& e) {
    std::fprintf(stderr, "braid: error: %s\n", first_line(e.what()).c_str());
    return 3;  // another rank of a data-parallel job failed first (see train/distributed.h)
  } catch (const braid::InputError& e) {
    std::fprintf(stderr, "braid: error: %s\n", first_line(e.what()).c_str());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "braid: internal error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
}
