#include "braid/run/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/strings.h"
#include "braid/run/weights.h"

namespace braid::run {

namespace {

std::string host_name() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace

std::string RunDir::tokenizer() const {
  for (const char* n : {"/tokenizer.model", "/tokenizer.json", "/vocab.txt"})
    if (file_exists(root + n)) return root + n;
  return root + "/tokenizer.model";
}

std::string RunDir::tokenizer_as(const std::string& src) const {
  if (ends_with(src, ".json")) return root + "/tokenizer.json";
  if (ends_with(src, ".txt")) return root + "/vocab.txt";
  return root + "/tokenizer.model";
}

std::string RunDir::rank_log(int rank) const { return root + "/rank" + std::to_string(rank) + ".log"; }
bool RunDir::is_run() const { return file_exists(recipe()); }
bool RunDir::has_checkpoint() const { return file_exists(last()); }
bool RunDir::finished() const { return file_exists(model()); }

std::vector<std::string> RunDir::tensorboard_files() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(tensorboard_dir(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kTensorboardPrefix, 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string RunDir::new_tensorboard_file() const {
  long long secs = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string prefix(kTensorboardPrefix);
  for (const auto& f : tensorboard_files()) {  // sort after every file already there
    const std::string name = std::filesystem::path(f).filename().string();
    const long long s = std::atoll(name.c_str() + prefix.size());
    if (s >= secs) secs = s + 1;
  }
  const std::string host = host_name();
  return tensorboard_dir() + "/" + prefix + std::to_string(secs) + "." + host + "." + std::to_string(::getpid()) +
         kTensorboardSuffix;
}

std::vector<std::string> RunDir::setup_files() const {
  std::vector<std::string> out;
  for (const auto& f : {recipe(), facts(), tokenizer(), tokenizer_config(), classes()})
    if (file_exists(f)) out.push_back(f);
  return out;
}

RunLock::RunLock(const RunDir& rd) {
  make_dirs(rd.root);
  const std::string path = rd.lock();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  BRAID_INPUT_CHECK(fd_ >= 0, "{}: cannot open the run's lock file ({})", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    // The holder writes its pid right after taking the lock: a trainer that started at the same moment
    // can find the file still empty, so it waits up to ~0.2 s for the holder's line.
    std::string holder;
    for (int attempt = 0; attempt < 40 && holder.empty(); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      holder.assign(256, '\0');
      const ssize_t n = ::pread(fd_, holder.data(), holder.size(), 0);
      holder.resize(n > 0 ? static_cast<size_t>(n) : 0);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    }
    ::close(fd_);
    fd_ = -1;
    BRAID_INPUT_CHECK(err != EWOULDBLOCK, "{}: another braid process is training this run ({}); wait for it to end or "
                      "pick another run directory", rd.root, holder.empty() ? "holder unknown" : holder);
    input_error("{}: cannot lock the run ({})", path, std::strerror(err));
  }
  const std::string host = host_name();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host + ", since unix time " + std::to_string(now);
  if (::ftruncate(fd_, 0) == 0) {
    const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
    (void)w;  // the holder text is informative only; the lock is what matters
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

std::string weights_help() {
  return "model (the run's final model), best (best validated), last (the weights after the last checkpointed "
         "step, from checkpoints/last.pt), or a weights file path";
}

Pipeline open_run(const std::string& dir, const std::string& weights, const std::string& device) {
  const RunDir rd(dir);
  auto p = open_pipeline(dir);
  if (!device.empty()) {
    p.device = parse_device(device);
    p.model->to(p.device);
  }
  if (weights == "last") {
    BRAID_INPUT_CHECK(rd.has_checkpoint(), "{}: no checkpoint at {}", dir, rd.last());
    load_checkpoint_weights(*p.model, rd.last());
    return p;
  }
  const std::string w = weights == "model" ? rd.model() : weights == "best" ? rd.best() : weights;
  BRAID_INPUT_CHECK(file_exists(w), "{}: no weights at {} (did training finish? try --weights last)", dir, w);
  load_weights(*p.model, w);
  return p;
}

}  // namespace braid::run
