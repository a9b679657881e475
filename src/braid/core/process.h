// braid/core/process.h — run a child process (argv, no shell) and measure it.
#pragma once

#include <string>
#include <vector>

namespace braid {

struct ProcessResult {
  int exit_code = -1;       // 128 + signal when killed by one
  double seconds = 0;       // wall time
  long max_rss_kb = 0;      // the child's peak resident set size
};

// Runs `argv` (argv[0] is a path) with stdout/stderr sent to `log_path` ("" = inherit).
// Ctrl-C in the parent is forwarded: the child gets SIGINT, and braid::Interrupted is thrown.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& log_path = "");

// Starts `argv` without waiting: the child's environment is this process's with `env`
// ("NAME=value" entries) added or replacing same-named ones; output goes to `log_path` ("" =
// inherit). Returns its pid; the caller reaps it (waitpid).
int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  const std::string& log_path = "");

// Absolute path of the running executable.
std::string self_exe();

}  // namespace braid
