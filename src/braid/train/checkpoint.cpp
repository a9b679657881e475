#include "braid/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/run/weights.h"

namespace braid::train {

using run::open_archive;
using run::read_module;
using run::write_module;

namespace {

torch::Tensor bytes_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

std::string tensor_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

}  // namespace

void save_checkpoint(const std::string& path, const torch::nn::Module& m, torch::optim::Optimizer& opt,
                     const TrainState& st) {
  torch::serialize::OutputArchive root, model, optim;
  write_module(m, model);
  opt.save(optim);
  root.write("model", model);
  root.write("optimizer", optim);
  nlohmann::json j = {{"step", st.step}, {"epoch", st.epoch},         {"batch", st.batch},
                      {"best", st.best}, {"best_step", st.best_step}, {"extra", st.extra}};
  root.write("state", bytes_tensor(j.dump()));
  root.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  run::save_archive(root, path);  // every write checked; a full disk leaves the previous checkpoint
}

TrainState load_checkpoint(const std::string& path, torch::nn::Module& m, torch::optim::Optimizer& opt) {
  auto root = open_archive(path);
  torch::serialize::InputArchive model, optim;
  torch::Tensor state, rng;
  BRAID_INPUT_CHECK(root.try_read("model", model) && root.try_read("optimizer", optim) && root.try_read("state", state) &&
                        root.try_read("rng_cpu", rng),
                    "{}: not a braid checkpoint (expected model, optimizer, state and rng_cpu entries)", path);
  read_module(m, model, path);
  try {
    opt.load(optim);
  } catch (const c10::Error& e) {
    input_error("{}: optimizer state does not match this model/optimizer", path);
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(tensor_bytes(state));
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: corrupt trainer state", path);
  }
  TrainState st;
  st.step = j.at("step");
  st.epoch = j.at("epoch");
  st.batch = j.at("batch");
  st.best = j.at("best");
  st.best_step = j.at("best_step");
  st.extra = j.value("extra", nlohmann::json::object());
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng);
  return st;
}

}  // namespace braid::train
