// braid/run/weights.h — model weights on disk: save, load (strict), load a checkpoint's model,
// load the matching subset (`model.init_from`).
//
// Weight files are LibTorch archives keyed by parameter/buffer name. Loading is strict: an
// unknown, missing or mis-shaped tensor is an InputError naming the file and the tensor; a
// tensor is never silently reshaped. Every write is atomic (temp file + rename). Resumable
// training checkpoints (optimizer, trainer state, RNG) build on these and live in
// train/checkpoint.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <string>

namespace braid::run {

void save_weights(const torch::nn::Module& m, const std::string& path);
void load_weights(torch::nn::Module& m, const std::string& path);
// The model weights inside a resumable training checkpoint (train/checkpoint.h).
void load_checkpoint_weights(torch::nn::Module& m, const std::string& path);
// Copy every tensor of a weights file whose name and shape match one of the module's (others are
// left as they are); returns how many were loaded. For `model.init_from`.
int64_t load_matching_weights(torch::nn::Module& m, const std::string& path);

// The archive-level pieces checkpoints reuse.
// Every parameter and buffer of `m` (on the CPU) into `ar`.
void write_module(const torch::nn::Module& m, torch::serialize::OutputArchive& ar);
// Strict read of `m`'s tensors from `ar`; `src` names the file in errors.
void read_module(torch::nn::Module& m, torch::serialize::InputArchive& ar, const std::string& src);
// Opens a LibTorch archive; a missing or unreadable file is an InputError.
torch::serialize::InputArchive open_archive(const std::string& path);
// Writes `ar` to `path` atomically with every write checked: a failed write (a full disk, a file size
// limit) is a one-line std::runtime_error "<path>: write failed after N bytes: <reason>", the temporary
// file is removed and `path` keeps its previous content. (LibTorch's own save_to(path) throws again from
// its writer's destructor after a failed write, which ends the process with std::terminate.)
void save_archive(torch::serialize::OutputArchive& ar, const std::string& path);

}  // namespace braid::run
