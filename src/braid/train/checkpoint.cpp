#include "braid/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"

namespace braid::train {

namespace {

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

void save_weights(const torch::nn::Module& m, const std::string& path) {
  torch::serialize::OutputArchive ar;
  write_module(m, ar);
  atomic_write(path, [&](const std::string& tmp) { ar.save_to(tmp); });
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
  atomic_write(path, [&](const std::string& tmp) { root.save_to(tmp); });
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
