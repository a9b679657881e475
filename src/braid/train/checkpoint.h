// braid/train/checkpoint.h — resumable training checkpoints (model, optimizer, trainer state, RNG).
//
// The model part uses run/weights.h (strict loading, atomic writes); plain weight files are
// run's concern, not train's.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>

namespace braid::train {

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
