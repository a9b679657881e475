#include "braid/run/run_dir.h"

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/run/weights.h"

namespace braid::run {

std::string RunDir::rank_log(int rank) const { return root + "/rank" + std::to_string(rank) + ".log"; }
bool RunDir::is_run() const { return file_exists(recipe()); }
bool RunDir::has_checkpoint() const { return file_exists(last()); }
bool RunDir::finished() const { return file_exists(model()); }

std::vector<std::string> RunDir::setup_files() const {
  std::vector<std::string> out;
  for (const auto& f : {recipe(), facts(), tokenizer(), classes()})
    if (file_exists(f)) out.push_back(f);
  return out;
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
