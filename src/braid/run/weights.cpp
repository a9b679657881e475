#include "braid/run/weights.h"

#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"

namespace braid::run {

void write_module(const torch::nn::Module& m, torch::serialize::OutputArchive& ar) {
  for (const auto& p : m.named_parameters()) ar.write(p.key(), p.value().detach().cpu());
  for (const auto& b : m.named_buffers()) ar.write(b.key(), b.value().cpu(), /*is_buffer=*/true);
}

void read_module(torch::nn::Module& m, torch::serialize::InputArchive& ar, const std::string& src) {
  std::set<std::string> expected;
  auto load = [&](const std::string& name, torch::Tensor& dst, bool is_buffer) {
    expected.insert(name);
    torch::Tensor t;
    BRAID_INPUT_CHECK(ar.try_read(name, t, is_buffer), "{}: tensor '{}' is missing; the file does not match this model",
                      src, name);
    BRAID_INPUT_CHECK(t.sizes() == dst.sizes(), "{}: tensor '{}' has shape {}, the model expects {}", src, name,
                      fmt::join(t.sizes(), "x"), fmt::join(dst.sizes(), "x"));
    BRAID_INPUT_CHECK(t.scalar_type() == dst.scalar_type(), "{}: tensor '{}' has dtype {}, the model expects {}", src,
                      name, c10::toString(t.scalar_type()), c10::toString(dst.scalar_type()));
    torch::NoGradGuard ng;
    dst.copy_(t);
  };
  for (auto& p : m.named_parameters()) load(p.key(), p.value(), false);
  for (auto& b : m.named_buffers()) load(b.key(), b.value(), true);
  for (const auto& k : ar.keys())
    BRAID_INPUT_CHECK(expected.count(k), "{}: unknown tensor '{}'; the file does not match this model", src, k);
}

torch::serialize::InputArchive open_archive(const std::string& path) {
  BRAID_INPUT_CHECK(file_exists(path), "{}: no such file", path);
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    input_error("{}: not a braid weights/checkpoint file (unreadable archive)", path);
  }
  return ar;
}

void save_archive(torch::serialize::OutputArchive& ar, const std::string& path) {
  atomic_write(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot open for writing: {}", tmp, std::strerror(errno)));
    // The archive writer must never see a failed write (it would throw again from its destructor): the
    // first error is recorded, later bytes are dropped, and the error is thrown once the archive is done.
    int err = 0;
    size_t written = 0;
    ar.save_to([&](const void* buf, size_t n) -> size_t {
      const char* p = static_cast<const char*>(buf);
      size_t left = n;
      while (err == 0 && left > 0) {
        const ssize_t w = ::write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          err = w < 0 ? errno : EIO;
          break;
        }
        p += w;
        left -= static_cast<size_t>(w);
        written += static_cast<size_t>(w);
      }
      return n;
    });
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0)
      throw std::runtime_error(fmt::format("{}: write failed after {} bytes: {}", path, written, std::strerror(err)));
  });
}

void save_weights(const torch::nn::Module& m, const std::string& path) {
  torch::serialize::OutputArchive ar;
  write_module(m, ar);
  save_archive(ar, path);
}

void load_weights(torch::nn::Module& m, const std::string& path) {
  auto ar = open_archive(path);
  read_module(m, ar, path);
}

void load_checkpoint_weights(torch::nn::Module& m, const std::string& path) {
  auto root = open_archive(path);
  torch::serialize::InputArchive model;
  BRAID_INPUT_CHECK(root.try_read("model", model), "{}: not a braid checkpoint (no model entry)", path);
  read_module(m, model, path);
}

int64_t load_matching_weights(torch::nn::Module& m, const std::string& path) {
  auto ar = open_archive(path);
  int64_t n = 0;
  torch::NoGradGuard ng;
  auto load = [&](const std::string& name, torch::Tensor& dst, bool is_buffer) {
    torch::Tensor t;
    if (!ar.try_read(name, t, is_buffer) || t.sizes() != dst.sizes() || t.scalar_type() != dst.scalar_type()) return;
    dst.copy_(t);
    ++n;
  };
  for (auto& p : m.named_parameters()) load(p.key(), p.value(), false);
  for (auto& b : m.named_buffers()) load(b.key(), b.value(), true);
  return n;
}

}  // namespace braid::run
