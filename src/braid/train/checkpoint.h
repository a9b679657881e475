// braid/train/checkpoint.h — weights and full training checkpoints.
//
// Weight files are LibTorch archives keyed by parameter/buffer name. Loading is strict: an
// unknown, missing or mis-shaped tensor is an InputError naming the file and the tensor; a
// tensor is never silently reshaped. Every write is atomic (temp file + rename).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>

namespace braid::train {

void save_weights(const torch::nn::Module& m, const std::string& path);
void load_weights(torch::nn::Module& m, const std::string& path);
// The model weights inside a training checkpoint (checkpoints/last.pt: the weights after the last step).
void load_checkpoint_weights(torch::nn::Module& m, const std::string& path);
// Copy every tensor of a weights file whose name and shape match one of the module's (others are
// left as they are); returns how many were loaded. For `model.init_from`.
int64_t load_matching_weights(torch::nn::Module& m, const std::string& path);

// Everything needed to continue a run exactly: model (all parameters and buffers), optimizer
// state, trainer state (step, epoch, position in the epoch, best score, ...) and the RNG state.
struct TrainState {
  int64_t step = 0;          // optimizer steps done
  int64_t epoch = 0;         // current epoch
  int64_t batch = 0;         // batches of `epoch` already consumed
  double best = -1e300;      // best validation score so far
  int64_t best_step = -1;
  nlohmann::json extra = nlohmann::json::object();  // free-form (e.g. the run's seconds so far)
};

void save_checkpoint(const std::string& path, const torch::nn::Module& m, torch::optim::Optimizer& opt,
                     const TrainState& st);
TrainState load_checkpoint(const std::string& path, torch::nn::Module& m, torch::optim::Optimizer& opt);

}  // namespace braid::train
