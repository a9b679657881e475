// braid/train/trainer.h — supervised training of a recipe on a manifest, with exact resume.
//
// `train(opts)` builds the pipeline (run/pipeline.h), then runs epochs of AdamW or SGD with
// warmup + cosine learning rate, gradient clipping, validation every `eval_every` steps and
// atomic checkpoints every `checkpoint_every` steps. A run killed at any point (even kill -9)
// continues with `resume = true` and produces the same per-step losses and weights as an
// uninterrupted run (bitwise on CPU with the same thread count).
//
// Data-parallel (`opts.dist.world_size > 1`, see distributed.h): every rank trains on its
// shard of each epoch with per-rank batch `batch_size` (global batch = batch_size x world);
// gradients are averaged across ranks after backward; logged losses are means over ranks.
// Rank 0 alone writes the run directory (recipe, metrics, checkpoints, model, summary) and
// ships what the others need; validation runs on every rank over the whole split (the
// replicas are identical, so the figures are too) and rank 0 logs it. A checkpoint records
// the world size; a resume with another one re-derives the step from the epoch position.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "braid/train/distributed.h"

namespace braid::train {

struct RunOptions {
  std::string recipe;                 // recipe YAML (ignored on resume: the run's resolved recipe is used)
  std::string recipe_text;            // recipe given as text instead of a file (`recipe` then names it in errors)
  std::string data;                   // manifest path (overrides data.manifest)
  std::string out;                    // run directory
  std::vector<std::string> sets;      // "key.path=value" overrides
  bool resume = false;                // continue from the run's resume checkpoint (run::RunDir::last)
  int threads = -1;                   // -1 = recipe's `threads`
  std::string device;                 // "" = recipe's `device`
  int64_t seed = -1;                  // -1 = recipe's `seed`
  DistOptions dist;                   // data-parallel job this process belongs to (world_size 1 = none)
};

struct TrainOptions {
  std::string optimizer = "adamw";   // adamw | sgd
  double lr = 1e-3;                  // peak learning rate
  double weight_decay = 0.01;        // decoupled (adamw) or L2 (sgd)
  double momentum = 0.9;             // sgd only
  int64_t epochs = 10;               // passes over the train split
  int64_t max_steps = 0;             // stop after this many steps (0 = epochs decide)
  int64_t batch_size = 64;           // samples per step
  int64_t warmup_steps = 20;         // linear warmup from 0
  std::string schedule = "cosine";   // cosine | constant (after warmup)
  double min_lr = 0.0;               // cosine floor, as a fraction of lr
  double grad_clip = 1.0;            // max global gradient norm (0 = off)
  double label_smoothing = 0.0;      // classification only
  std::string loss = "";             // classify: ce; regress: mse | ccc ("" = ce / mse)
  int64_t eval_every = 0;            // validation every N steps (0 = at the end of each epoch)
  int64_t checkpoint_every = 50;     // resume checkpoint every N steps (and at every validation)
  int64_t log_every = 1;             // metrics log train lines every N steps
  bool gather_negatives = true;      // data-parallel: CLIP/SigLIP/ITC contrast against every rank's rows
  std::string adamw = "auto";        // AdamW implementation: auto | loop | foreach | fused (train/optim.h)
  bool tensorboard = true;           // also write metrics lines as TensorBoard scalars (run::RunDir::new_tensorboard_file)
  // Per-group learning rates (nanoVLM): parameters whose name starts with a key learn at lr x its factor
  // (the longest matching key wins), e.g. {lm: 0.05, enc_image: 0.05}; the rest at lr.
  std::map<std::string, double> lr_scale;
};

struct TrainResult {
  std::string run_dir;
  int64_t steps = 0;
  double seconds = 0;               // training wall time of this run (all sessions)
  int64_t parameters = 0;
  nlohmann::json val;               // final validation metrics (best model)
};

TrainResult train(const RunOptions& opts);

}  // namespace braid::train

namespace braid::run { struct Pipeline; }
namespace braid { struct Batch; }
namespace at { class Tensor; }

namespace braid::train {

// The training loss of one batch: the model's objective (task align) or the supervised loss
// (cross-entropy with `label_smoothing`, or `loss` = mse | ccc for regression), plus the model's
// auxiliary loss. The one definition the trainer and `braid bench speed` share.
at::Tensor batch_loss(run::Pipeline& p, const Batch& batch, double label_smoothing = 0.0,
                      const std::string& loss = "");

}  // namespace braid::train
