// braid — multimodal learning from one binary. See README.md and docs/cli.md.
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "braid/core/cpu_features.h"
#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/train/distributed.h"
#include "commands.h"

namespace {

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::vector<std::string> g_invocation;

}  // namespace

const std::vector<std::string>& braid::cli::invocation() { return g_invocation; }

int main(int argc, char** argv) {
  g_invocation.assign(argv, argv + argc);
  // Environment overrides are read here, in apps/, and passed down (the library reads none).
  const char* malloc_mode = std::getenv("BRAID_MALLOC");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  // BRAID_CPU_BF16=0: `precision: auto` treats the CPU as having no native bf16 (docs/cli.md)
  if (const char* b = std::getenv("BRAID_CPU_BF16"); b && std::string(b) == "0") braid::set_cpu_bf16_allowed(false);
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
