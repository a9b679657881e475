#include "braid/run/export.h"

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/safetensors.h"
#include "braid/nn/lm/causal_lm.h"
#include "braid/run/hf_lm.h"
#include "braid/run/run_dir.h"

namespace braid::run {

namespace {

// A YAML tree as JSON: maps and sequences as such, scalars as null / bool / integer / number / string by
// their text (YAML 1.2 core schema), so a recipe reads the same in Python.
nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      auto j = nlohmann::json::object();
      for (auto it = n.begin(); it != n.end(); ++it) j[it->first.as<std::string>()] = yaml_to_json(it->second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      auto j = nlohmann::json::array();
      for (const auto& x : n) j.push_back(yaml_to_json(x));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted in the file: a string
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      try {
        size_t used = 0;
        const long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
        const double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (const std::exception&) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

ExportResult export_run(const std::string& run, const std::string& out, const std::string& weights) {
  auto p = open_run(run, weights, "cpu");
  p.model->eval();
  const RunDir rd(run);
  make_dirs(out);
  ExportResult r;

  const TensorMap all = module_tensors(*p.model);
  r.tensors = static_cast<int64_t>(all.size());
  const std::string st = out + "/model.safetensors";
  write_safetensors(st, all, {{"format", "pt"}, {"braid_run", run}});
  r.files.push_back(st);

  // the model's Llama-family LM, if it has one
  std::shared_ptr<nn::lm::CausalLMImpl> lm;
  for (const auto& c : p.model->named_children())
    if (c.key() == "lm") lm = std::dynamic_pointer_cast<nn::lm::CausalLMImpl>(c.value());
  if (lm) {
    const std::string hf = out + "/hf";
    make_dirs(hf);
    auto cfg = hf_lm_config(lm->options);
    r.hf = cfg["architectures"][0].get<std::string>();
    atomic_write_text(hf + "/config.json", cfg.dump(2) + "\n");
    write_safetensors(hf + "/model.safetensors", module_tensors(*lm), {{"format", "pt"}});
    r.files.push_back(hf + "/config.json");
    r.files.push_back(hf + "/model.safetensors");
    // a probe for readers of hf/: fixed ids and braid's logits for them
    torch::NoGradGuard ng;
    auto ids = (torch::arange(32, torch::kLong) * 7 + 3).remainder(lm->options.vocab_size).view({2, 16});
    ids = ids.narrow(1, 0, std::min<int64_t>(16, lm->options.max_seq)).contiguous();
    const std::string probe = out + "/lm_check.safetensors";
    write_safetensors(probe, {{"ids", ids}, {"logits", lm->forward(ids).contiguous()}});
    r.files.push_back(probe);
  }

  nlohmann::json shapes = nlohmann::json::object();
  for (const auto& [n, t] : all) shapes[n] = t.sizes().vec();
  nlohmann::json bc = {{"recipe", yaml_to_json(YAML::LoadFile(rd.recipe()))},
                       {"facts", p.facts},
                       {"run", run},
                       {"weights", weights},
                       {"tensors", shapes},
                       {"hf", r.hf.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.hf)},
                       {"braid_version", BRAID_VERSION}};
  const std::string bcp = out + "/braid_config.json";
  atomic_write_text(bcp, bc.dump(1) + "\n");
  r.files.push_back(bcp);
  return r;
}

}  // namespace braid::run
