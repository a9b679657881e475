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

static void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void atomic_write(const std::string& path, const std::function<void(const std::string&)>& writer) {
  fs::path p(path);
  if (p.has_parent_path()) make_dirs(p.parent_path().string());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    writer(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error(fmt::format("{}: cannot rename temporary file into place: {}", path, std::strerror(e)));
  }
  fsync_path(p.has_parent_path() ? p.parent_path().string() : ".");
}

void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.flush();
    if (!f) throw std::runtime_error(fmt::format("{}: write failed", tmp));
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
