// A live `braid serve` in a child process, for the tests that talk to it over HTTP (tests/mllm_serve_test.cpp,
// tests/draw_cli_test.cpp). Header-only: the tests' CMake glob builds only *_test.cpp (and test_util.cpp).
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "test_util.h"

namespace braid::test {

// Runs `braid serve ARGS` (ARGS already shell-quoted, holding `--port 0`) with stdout and stderr in
// log_path, emptied first so an old server's line is never read. The constructor waits up to 60 s for the
// "http://127.0.0.1:PORT/" line, or until the child exits; port() stays -1 when the line never came (log()
// says why). SIGTERM and a wait for the child on destruction.
class ServeProcess {
 public:
  ServeProcess(const std::string& args, std::string log_path) : log_(std::move(log_path)) {
    write_file(log_, "");
    const std::string cmd = "exec " + std::string(BRAID_EXE) + " serve " + args + " >" + q(log_) + " 2>&1";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::string prefix = "http://127.0.0.1:";
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
         pid_ > 0 && std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
      const auto text = read_file(log_);
      const auto at = text.find(prefix);
      if (at != std::string::npos && text.find('/', at + prefix.size()) != std::string::npos) {
        port_ = std::stoi(text.substr(at + prefix.size()));
        break;
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) pid_ = -1;  // it exited without serving: stop waiting
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      waitpid(pid_, &st, 0);
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  std::string log() const { return read_file(log_); }

 private:
  pid_t pid_ = -1;
  int port_ = -1;
  std::string log_;
};

// dir/serve_N.log, N counting the servers this test process has started: a fresh log for each.
inline std::string fresh_serve_log(const std::string& dir) {
  static int counter = 0;
  return dir + "/serve_" + std::to_string(counter++) + ".log";
}

}  // namespace braid::test
