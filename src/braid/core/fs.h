// braid/core/fs.h — small file helpers: atomic writes, whole-file reads, path joins.
#pragma once

#include <functional>
#include <string>

namespace braid {

// Write a file atomically: `writer` fills `<path>.tmp.<pid>`, which is flushed to disk and
// renamed over `path`. A crash leaves either the old file or the new one, never a torn one.
void atomic_write(const std::string& path, const std::function<void(const std::string& tmp_path)>& writer);
void atomic_write_text(const std::string& path, const std::string& text);

// Read a whole file; InputError naming the path when it cannot be read.
std::string read_text_file(const std::string& path);

// `rel` relative to the directory of `base_file` (absolute `rel` is returned unchanged).
std::string resolve_relative(const std::string& base_file, const std::string& rel);

bool file_exists(const std::string& path);
void make_dirs(const std::string& path);

// Remove a file or a directory tree (what std::filesystem::remove_all does; missing is fine).
// Through POSIX nftw(): with pip's LibTorch 2.x, std::filesystem::remove_all calls bound to the
// copy that libtorch exports and crashed (measured on the GPU machine, docs/gpu.md).
void remove_tree(const std::string& path);

}  // namespace braid
