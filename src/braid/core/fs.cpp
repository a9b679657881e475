#include "braid/core/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "braid/core/error.h"

namespace braid {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void io_fail(const std::string& path, const char* what, int e) {
  throw std::runtime_error(fmt::format("{}: {} failed: {}", path, what, std::strerror(e)));
}

// fsync a file (or a directory) that is already written; every return value is checked. A directory
// whose file system cannot sync directories (EINVAL) is accepted: the rename itself is then all there is.
void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDWR);
  if (fd < 0) io_fail(path, "open for fsync", errno);
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    if (!(directory && (e == EINVAL || e == ENOTSUP))) io_fail(path, "fsync", e);
    return;
  }
  if (::close(fd) != 0) io_fail(path, "close", errno);
}

}  // namespace

void atomic_write(const std::string& path, const std::function<void(const std::string&)>& writer) {
  fs::path p(path);
  if (p.has_parent_path()) make_dirs(p.parent_path().string());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  // A write error (a full disk, a file size limit, an I/O error) surfaces at the write, the fsync or
  // the close; any of them removes the temporary file and leaves `path` as it was.
  try {
    writer(tmp);
    fsync_path(tmp, false);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) io_fail(path, "rename of the temporary file into place", errno);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  fsync_path(p.has_parent_path() ? p.parent_path().string() : ".", true);
}

void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write(path, [&](const std::string& tmp) {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) io_fail(tmp, "open for writing", errno);
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int e = n < 0 ? errno : EIO;
        ::close(fd);
        throw std::runtime_error(fmt::format("{}: write failed after {} of {} bytes: {}", path, done, text.size(),
                                             std::strerror(e)));
      }
      done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) io_fail(tmp, "close", errno);
  });
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file ({})", path, std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string resolve_relative(const std::string& base_file, const std::string& rel) {
  fs::path r(rel);
  if (r.is_absolute()) return rel;
  fs::path b(base_file);
  return (b.parent_path() / r).lexically_normal().string();
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  BRAID_INPUT_CHECK(!ec, "{}: cannot create directory ({})", path, ec.message());
}


namespace {
int remove_entry(const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) == 0 || errno == ENOENT ? 0 : -1; }
}  // namespace

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    throw std::runtime_error(path + ": cannot remove: " + std::strerror(errno));
}

}  // namespace braid
