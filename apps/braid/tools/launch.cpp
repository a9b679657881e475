#include "tools/launch.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/process.h"
#include "braid/core/runtime.h"
#include "braid/train/distributed.h"
#include "braid/run/run_dir.h"

namespace braid::tools {

static int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("cannot open a socket to find a free port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a socket to find a free port");
  }
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// The last line of `path` that looks like an error (else the last non-empty line).
static std::string last_error_line(const std::string& path) {
  std::ifstream f(path);
  std::string line, last, err;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto cr = line.rfind('\r');  // progress redraws
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (line.empty()) continue;
    last = line;
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) err = line;
  }
  return err.empty() ? last : err;
}

int launch_local(const std::vector<std::string>& args, int nproc, int port, const std::string& run_dir) {
  const run::RunDir rd(run_dir);
  BRAID_INPUT_CHECK(nproc >= 1, "--nproc: expected a positive number of processes, got {}", nproc);
  if (port == 0) port = free_port();
  std::vector<int> pids(nproc, -1), codes(nproc, -1);
  std::vector<std::string> logs(nproc);
  std::vector<std::string> argv = args;
  argv[0] = self_exe();
  const std::string token = train::new_job_token();  // every rank checks it against rank 0's (distributed.h)
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env = {"RANK=" + std::to_string(r),        "WORLD_SIZE=" + std::to_string(nproc),
                                    "LOCAL_RANK=" + std::to_string(r),  "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                                    "MASTER_ADDR=127.0.0.1",            "MASTER_PORT=" + std::to_string(port),
                                    "BRAID_JOB_TOKEN=" + token};
    if (r > 0) logs[r] = rd.rank_log(r);
    pids[r] = spawn_process(argv, env, logs[r]);
  }
  spdlog::info("launched {} ranks on 127.0.0.1:{} (rank k > 0 logs to {})", nproc, port, rd.rank_log(1));
  // A failure is secondary when it is a consequence: PeerLost (exit 3), or the launcher's own
  // SIGTERM (130/143) or SIGKILL (137) to a rank still running.
  std::vector<char> termed(nproc, 0), killed(nproc, 0);
  int alive = nproc;
  bool stopping = false, forwarded = false;
  std::chrono::steady_clock::time_point kill_at{};
  while (alive > 0) {
    for (int r = 0; r < nproc; ++r) {
      if (codes[r] >= 0) continue;
      int status = 0;
      pid_t w = ::waitpid(pids[r], &status, WNOHANG);
      if (w != pids[r]) continue;
      codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      --alive;
      if (codes[r] != 0 && !stopping) {
        stopping = true;
        for (int k = 0; k < nproc; ++k)
          if (codes[k] < 0) {
            ::kill(pids[k], SIGTERM);
            termed[k] = 1;
          }
        kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      }
    }
    if (interrupted() && !forwarded) {
      for (int k = 0; k < nproc; ++k)
        if (codes[k] < 0) ::kill(pids[k], SIGINT);
      forwarded = true;
    }
    if (stopping && alive > 0 && std::chrono::steady_clock::now() > kill_at) {
      for (int k = 0; k < nproc; ++k)
        if (codes[k] < 0) {
          ::kill(pids[k], SIGKILL);
          killed[k] = 1;
        }
      kill_at = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (forwarded) throw Interrupted();
  int culprit = -1, fallback = -1;
  for (int r = 0; r < nproc; ++r) {
    if (codes[r] == 0) continue;
    if (fallback < 0) fallback = r;
    bool secondary = codes[r] == 3 || (termed[r] && (codes[r] == 130 || codes[r] == 128 + SIGTERM)) ||
                     (killed[r] && codes[r] == 128 + SIGKILL);
    if (!secondary && culprit < 0) culprit = r;
  }
  if (culprit < 0) culprit = fallback;
  if (culprit < 0) return 0;
  const int c = codes[culprit];
  std::string why = culprit == 0 ? "its error is above" : last_error_line(logs[culprit]);
  std::string sig = c > 128 ? fmt::format(" (signal {})", c - 128) : "";
  std::fprintf(stderr, "braid: rank %d of %d failed with exit code %d%s: %s\n", culprit, nproc, c, sig.c_str(),
               why.c_str());
  if (culprit > 0) std::fprintf(stderr, "braid: its log: %s\n", logs[culprit].c_str());
  return c;
}

}  // namespace braid::tools
