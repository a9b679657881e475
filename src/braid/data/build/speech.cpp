#include "braid/data/build/speech.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "braid/core/runtime.h"
#include "braid/data/build/common.h"

extern char** environ;

namespace braid::data::build {

std::vector<std::string> espeak_command(const SpeechJob& j) {
  std::vector<std::string> argv = {"espeak-ng", "-v", j.voice, "-s", std::to_string(j.speed), "-p", std::to_string(j.pitch)};
  if (j.amplitude >= 0) argv.insert(argv.end(), {"-a", std::to_string(j.amplitude)});
  argv.insert(argv.end(), {"-w", j.wav_path, "--", j.text});
  return argv;
}

namespace {

std::atomic<bool> g_helper_allowed{true};

// The synthesizer program built beside braid (src/braid/data/build/espeak_helper.cc), "" when this build
// has none, it is not there any more, or set_speech_helper(false) turned it off.
std::string helper_path() {
#ifdef BRAID_ESPEAK_HELPER
  if (g_helper_allowed.load() && ::access(BRAID_ESPEAK_HELPER, X_OK) == 0) return BRAID_ESPEAK_HELPER;
#endif
  return "";
}

void put_field(std::string& out, const std::string& s) {
  out += std::to_string(s.size());
  out += '\n';
  out += s;
}

std::string job_name(const SpeechJob& j) {
  return fmt::format("espeak-ng speaking '{}' with voice {} into {}", j.text, j.voice, j.wav_path);
}

void speak_with_helper(const std::string& helper, const std::vector<SpeechJob>& jobs, int threads, const std::string& label) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));  // as parallel_for
  std::string input;
  for (const auto& j : jobs) {
    put_field(input, j.voice);
    put_field(input, std::to_string(j.speed));
    put_field(input, std::to_string(j.pitch));
    put_field(input, std::to_string(j.amplitude));
    put_field(input, j.wav_path);
    put_field(input, j.text);
  }
  // The jobs go through a file: the helper reads them all before it answers, and a helper that dies
  // early cannot leave braid blocked on (or killed by SIGPIPE from) a full pipe.
  char tmpl[] = "/tmp/braid-espeak-jobs-XXXXXX";
  const int in = ::mkstemp(tmpl);
  if (in < 0) throw std::runtime_error(fmt::format("cannot make a temporary file for the speech jobs: {}", std::strerror(errno)));
  ::unlink(tmpl);
  for (size_t done = 0; done < input.size();) {
    const ssize_t w = ::write(in, input.data() + done, input.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = errno;
      ::close(in);
      throw std::runtime_error(fmt::format("cannot write the speech jobs to {}: {}", tmpl, std::strerror(e)));
    }
    done += static_cast<size_t>(w);
  }
  ::lseek(in, 0, SEEK_SET);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in);
    throw std::runtime_error(fmt::format("pipe failed: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  const std::string nthreads = std::to_string(threads);
  char* argv[] = {const_cast<char*>(helper.c_str()), const_cast<char*>(nthreads.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, helper.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    throw std::runtime_error(fmt::format("cannot run {}: {}", helper, std::strerror(rc)));
  }
  braid::Progress progress(label, static_cast<int64_t>(jobs.size()), "jobs");
  int64_t ok = 0;
  std::string first_error, other, pending;
  bool stopped = false;
  auto take_line = [&](const std::string& line) {
    size_t i = 0;
    char* end = nullptr;
    if (line.rfind("ok ", 0) == 0) {
      ++ok;
    } else if (line.rfind("fail ", 0) == 0 && (i = std::strtoul(line.c_str() + 5, &end, 10), end && i < jobs.size())) {
      if (first_error.empty()) first_error = fmt::format("{}: {}", job_name(jobs[i]), *end ? end + 1 : "failed");
    } else if (other.size() < 1024) {
      other += (other.empty() ? "" : " ") + line;
    }
  };
  char buf[4096];
  for (;;) {
    if (braid::interrupted() && !stopped) {
      ::kill(pid, SIGTERM);
      stopped = true;
    }
    pollfd p{out[0], POLLIN, 0};
    const int r = ::poll(&p, 1, 100);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    const ssize_t k = ::read(out[0], buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    pending.append(buf, static_cast<size_t>(k));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) take_line(pending.substr(0, nl));
    progress.update(ok);
  }
  ::close(out[0]);
  if (!pending.empty()) take_line(pending);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error(fmt::format("waitpid for {} failed: {}", helper, std::strerror(errno)));
  braid::check_interrupt();
  if (!first_error.empty()) throw std::runtime_error(first_error);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || ok != static_cast<int64_t>(jobs.size()))
    throw std::runtime_error(fmt::format("{} stopped after {} of {} utterances (exit status {}){}{}", helper, ok, jobs.size(),
                                         WIFEXITED(status) ? WEXITSTATUS(status) : -1, other.empty() ? "" : ": ", other));
  progress.finish();
}

}  // namespace

void set_speech_helper(bool allowed) { g_helper_allowed = allowed; }

std::string speech_engine() { return helper_path().empty() ? "cli" : "library"; }

void speak_to_files(const std::vector<SpeechJob>& jobs, int threads, const std::string& label) {
  if (jobs.empty()) return;
  const std::string helper = helper_path();
  if (!helper.empty()) {
    speak_with_helper(helper, jobs, threads, label);
  } else {
    std::vector<std::vector<std::string>> commands;
    commands.reserve(jobs.size());
    for (const auto& j : jobs) commands.push_back(espeak_command(j));
    run_commands(commands, threads, label);
  }
  for (const auto& j : jobs) {  // the program exits 0 even when it could not write (or said nothing)
    std::error_code ec;
    const auto size = std::filesystem::file_size(j.wav_path, ec);
    if (ec || size <= 44) throw std::runtime_error(fmt::format("espeak-ng wrote no audio to {}", j.wav_path));
  }
}

}  // namespace braid::data::build
