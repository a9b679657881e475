// braid-espeak — the speech builders' synthesizer process (data/build/speech.h), a separate small
// program so that forking it is cheap (a fork of braid itself, with LibTorch mapped, cost more kernel
// time than the espeak-ng program's start-up it saves).
//
//   braid-espeak THREADS < jobs
//
// stdin: jobs, each six fields (voice, speed, pitch, amplitude, WAV path, text), every field written as
// its byte length in decimal, a newline, then its bytes. The library is initialized once as espeak-ng's
// main() does before it reads -v (synchronous output, as for -w) and the voice list is read once; then
// each job runs in a child forked from that state (at most THREADS at once), so its samples are those of
// a fresh `espeak-ng -v V -s S -p P [-a A] -w WAV -- TEXT`. stdout: "ok I" or "fail I MESSAGE" per job, in
// the order they finish; the exit status is 0 when every job succeeded.
#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include <sndfile.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

struct Job {
  std::string voice, wav, text;
  int speed = 0, pitch = 0, amplitude = -1;
};

bool read_field(std::string& out) {
  std::string len;
  if (!std::getline(std::cin, len)) return false;
  char* end = nullptr;
  const unsigned long n = std::strtoul(len.c_str(), &end, 10);
  if (len.empty() || *end != '\0' || n > (1u << 20)) return false;
  out.resize(n);
  return static_cast<bool>(std::cin.read(out.data(), static_cast<std::streamsize>(n)));
}

std::vector<short>* g_samples = nullptr;

void say(const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t w = ::write(1, line.data() + done, line.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    done += static_cast<size_t>(w);
  }
}

int collect(short* wav, int n, espeak_EVENT*) {
  if (wav && n > 0) g_samples->insert(g_samples->end(), wav, wav + n);
  return 0;
}

// In the child: espeak-ng main()'s calls in its order, then the WAV (22050 Hz mono 16-bit, as it writes).
std::string synthesize(const Job& j) {
  if (espeak_ng_SetVoiceByName(j.voice.c_str()) != ENS_OK) {
    espeak_VOICE sel;  // the program's fallback: the name as a language
    std::memset(&sel, 0, sizeof sel);
    sel.languages = j.voice.c_str();
    if (espeak_ng_SetVoiceByProperties(&sel) != ENS_OK) return "espeak-ng has no voice '" + j.voice + "'";
  }
  if (j.speed > 0) espeak_SetParameter(espeakRATE, j.speed, 0);
  if (j.amplitude >= 0) espeak_SetParameter(espeakVOLUME, j.amplitude, 0);
  if (j.pitch >= 0) espeak_SetParameter(espeakPITCH, j.pitch, 0);
  std::vector<short> samples;
  g_samples = &samples;
  espeak_SetSynthCallback(collect);
  if (espeak_Synth(j.text.c_str(), j.text.size() + 1, 0, POS_CHARACTER, 0, espeakCHARS_AUTO | espeakPHONEMES | espeakENDPAUSE,
                   nullptr, nullptr) != EE_OK ||
      espeak_ng_Synchronize() != ENS_OK)
    return "espeak-ng could not synthesize the text";
  SF_INFO info{};
  info.samplerate = espeak_ng_GetSampleRate();
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(j.wav.c_str(), SFM_WRITE, &info);
  if (!f) return "cannot write " + j.wav + ": " + sf_strerror(nullptr);
  const auto n = static_cast<sf_count_t>(samples.size());
  const bool wrote = sf_write_short(f, samples.data(), n) == n;
  if (sf_close(f) != 0 || !wrote) return "cannot write " + j.wav + ": a short write";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  // braid killed (kill -9 included) takes this helper with it: no orphan keeps writing into its data folder
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  std::vector<Job> jobs;
  for (;;) {
    Job j;
    std::string speed, pitch, amp;
    if (!read_field(j.voice)) break;
    if (!read_field(speed) || !read_field(pitch) || !read_field(amp) || !read_field(j.wav) || !read_field(j.text)) {
      std::fprintf(stderr, "braid-espeak: job %zu on stdin is cut short\n", jobs.size());
      return 2;
    }
    j.speed = std::atoi(speed.c_str());
    j.pitch = std::atoi(pitch.c_str());
    j.amplitude = std::atoi(amp.c_str());
    jobs.push_back(std::move(j));
  }
  espeak_ng_InitializePath(nullptr);
  espeak_ng_ERROR_CONTEXT ctx = nullptr;
  if (espeak_ng_Initialize(&ctx) != ENS_OK || espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, nullptr) != ENS_OK) {
    std::fprintf(stderr, "braid-espeak: libespeak-ng did not initialize (is espeak-ng-data installed?)\n");
    return 3;
  }
  espeak_ListVoices(nullptr);
  std::map<pid_t, size_t> running;
  size_t next = 0;
  int failed = 0;
  while (next < jobs.size() || !running.empty()) {
    while (next < jobs.size() && running.size() < static_cast<size_t>(threads)) {
      const pid_t pid = ::fork();
      if (pid < 0) {
        std::fprintf(stderr, "braid-espeak: fork failed: %s\n", std::strerror(errno));
        return 4;
      }
      if (pid == 0) {  // one line, one write(): atomic on the pipe beside the parent's lines
        const std::string err = synthesize(jobs[next]);
        if (err.empty()) ::_exit(0);
        say("fail " + std::to_string(next) + " " + err.substr(0, 1000) + "\n");
        ::_exit(1);
      }
      running[pid] = next++;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      return 4;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const size_t i = it->second;
    running.erase(it);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      say("ok " + std::to_string(i) + "\n");
    } else {
      ++failed;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)  // exit 1: the child said why
        say("fail " + std::to_string(i) + " " +
            (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) : std::string("failed")) + "\n");
    }
  }
  return failed ? 1 : 0;
}
