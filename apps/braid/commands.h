// apps/braid/commands.h — the `braid` subcommands. Each registers its options on the CLI11 app
// (one options struct per command drives parsing and --help) and runs when selected.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>

namespace braid::cli {

using Runner = std::function<int()>;

// Each adds its subcommand(s) to `app` and returns what to run when one is picked.
void add_data_commands(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_train_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_eval_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_quickstart_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_bench_commands(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_tokenizer_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_list_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);      // braid list
void add_report_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);     // braid report
void add_export_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);     // braid export
void add_import_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);     // braid import
void add_serve_commands(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);  // embed, index, search, serve
void add_tokenize_image_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out);  // tokenize-image

// Output files of commands (`generate --out`, `tokenize-image --out`; cmd_generate.cpp). check_output_file:
// before the work, an InputError naming `option` and `path` when the file cannot be written there (a folder,
// a parent that is a file or not writable); creates missing parent folders. write_output_file: the bytes,
// atomically (temp file + rename); a failed write is an InputError naming the path.
void check_output_file(const std::string& path, const std::string& option);
void write_output_file(const std::string& path, const std::string& bytes, const std::string& option);

// The command line this process was started with (argv[0] first), for commands that re-run
// the binary (train --nproc).
const std::vector<std::string>& invocation();

// Print a metrics table for humans (stdout) — shared by eval and quickstart.
void print_metrics(const std::string& title, const nlohmann::json& m);

}  // namespace braid::cli

#include "braid/eval/tasks.h"

namespace braid::cli {
// Evaluate a run's weights ("model", "best", "last" or a path) on one split of a manifest with an
// eval task ("" = the run's default; see `braid list tasks`).
nlohmann::json evaluate_run(const std::string& run, const std::string& manifest, const std::string& split,
                            const std::string& weights, const std::string& device, const std::string& task = "",
                            const std::string& text_view = "", eval::TaskRequest req = {});
}  // namespace braid::cli
