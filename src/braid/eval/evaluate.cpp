#include "braid/eval/evaluate.h"

#include <torch/torch.h>

#include <cmath>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/eval/generation.h"
#include "braid/eval/metrics.h"
#include "braid/eval/robustness.h"

namespace braid::eval {

void for_each_batch(Pipeline& p, data::Loader& loader, const std::string& label,
                    const std::function<void(const Batch& host, const Batch& dev)>& fn) {
  loader.start_epoch(0);
  Progress bar(label, loader.batches_per_epoch(), "batches");
  int64_t done = 0;
  while (auto b = loader.next()) {
    check_interrupt();
    fn(*b, b->to(p.device));
    bar.update(++done, "", b->size());
  }
  bar.finish();
}

nlohmann::json evaluate_scores(Pipeline& p, data::Loader& loader, const std::string& label) {
  torch::NoGradGuard ng;
  bool was_training = p.model->is_training();
  p.model->eval();
  const auto caps = p.model->capabilities();
  std::map<std::string, double> sums;
  int64_t rows = 0;
  torch::Tensor hist;
  if (caps.codes > 0) hist = torch::zeros({caps.codes}, torch::kLong);
  for_each_batch(p, loader, label, [&](const Batch& b, const Batch& dev) {
    AutocastScope ac(p.device.type(), p.precision);
    for (const auto& [k, v] : p.model->score_batch(dev)) sums[k] += v * static_cast<double>(b.size());
    rows += b.size();
    auto im = dev.mods.find("image");
    if (hist.defined() && im != dev.mods.end() && im->second.data.defined()) {
      auto keep = im->second.present.to(torch::kBool);
      auto c = p.model->codes("image", im->second).to(torch::kCPU).index({keep.to(torch::kCPU)});
      hist += torch::bincount(c.reshape(-1), {}, caps.codes);
    }
  });
  p.model->train(was_training);
  nlohmann::json m = {{"n", rows}};
  for (const auto& [k, v] : sums) m[k] = rows ? v / static_cast<double>(rows) : 0.0;
  if (hist.defined() && hist.sum().item<int64_t>() > 0) {
    auto pr = hist.to(torch::kDouble) / hist.sum().to(torch::kDouble);
    auto nz = pr.index({pr > 0});
    m["code_perplexity"] = std::exp(-(nz * nz.log()).sum().item<double>());
    m["codes_used"] = nz.numel();
    m["codes"] = caps.codes;
    m["live_codes"] = p.model->live_codes();
  }
  return m;
}

nlohmann::json evaluate(Pipeline& p, data::Loader& loader, const std::string& label,
                        const std::vector<std::string>& drop) {
  if (p.model->capabilities().scores) {
    BRAID_INPUT_CHECK(drop.empty(), "missing-modality evaluation applies to classify/regress runs");
    return evaluate_scores(p, loader, label);
  }
  if (p.task == Task::Align) {
    BRAID_INPUT_CHECK(drop.empty(), "missing-modality evaluation applies to classify/regress runs, not align");
    return evaluate_alignment(p, loader, label);
  }
  if (p.task == Task::Generate) {
    BRAID_INPUT_CHECK(drop.empty(), "missing-modality evaluation applies to classify/regress runs, not generate");
    return evaluate_generation(p, loader, GenerationOptions{}, label);
  }
  torch::NoGradGuard ng;
  bool was_training = p.model->is_training();
  p.model->eval();
  std::vector<torch::Tensor> outs, truth;
  for_each_batch(p, loader, label, [&](const Batch& b, const Batch& dev) {
    Batch batch = dev;
    if (!drop.empty()) drop_modalities(batch, drop);
    AutocastScope ac(p.device.type(), p.precision);
    outs.push_back(p.model->forward(batch).to(torch::kCPU).to(torch::kFloat));
    truth.push_back(p.task == Task::Classify ? b.labels : b.targets);
  });
  p.model->train(was_training);
  if (outs.empty()) return {{"n", 0}};
  auto o = torch::cat(outs), t = torch::cat(truth);
  return p.task == Task::Classify ? classification_metrics(o, t, p.classes->names()) : regression_metrics(o, t);
}

Embeddings embed_all(Pipeline& p, data::Loader& loader, const std::string& label) {
  torch::NoGradGuard ng;
  bool was_training = p.model->is_training();
  p.model->eval();
  std::map<std::string, std::vector<torch::Tensor>> vec, idx;
  for_each_batch(p, loader, label, [&](const Batch& b, const Batch& batch) {
    auto index = torch::tensor(b.index, torch::kLong);
    AutocastScope ac(p.device.type(), p.precision);
    for (const auto& [m, mb] : batch.mods) {
      auto e = p.model->embed(m, mb);
      if (!e.defined()) continue;
      auto keep = b.mods.at(m).present.to(torch::kBool);
      vec[m].push_back(e.to(torch::kCPU).to(torch::kFloat).index({keep}));
      idx[m].push_back(index.index({keep}));
    }
  });
  p.model->train(was_training);
  Embeddings out;
  const auto& samples = loader.manifest().samples();
  std::map<std::string, int64_t> group_ids;
  for (auto& [m, v] : vec) {
    out.vectors[m] = torch::cat(v);
    out.index[m] = torch::cat(idx[m]);
    auto ix = out.index[m];
    auto g = torch::empty_like(ix);
    auto ia = ix.accessor<int64_t, 1>();
    auto ga = g.accessor<int64_t, 1>();
    for (int64_t i = 0; i < ix.numel(); ++i) {
      const auto& s = samples[ia[i]];
      const std::string key = s.group.empty() ? "\x01" + s.id : s.group;
      ga[i] = group_ids.emplace(key, static_cast<int64_t>(group_ids.size())).first->second;
    }
    out.groups[m] = g;
  }
  return out;
}

nlohmann::json evaluate_alignment(Pipeline& p, data::Loader& loader, const std::string& label) {
  auto e = embed_all(p, loader, label);
  BRAID_INPUT_CHECK(e.vectors.size() >= 2, "alignment evaluation needs two embedded modalities; the model embeds {}",
                    e.vectors.size());
  nlohmann::json m = {{"retrieval", nlohmann::json::object()}};
  double sum_r1 = 0;
  int dirs = 0;
  for (auto a = e.vectors.begin(); a != e.vectors.end(); ++a)
    for (auto b = e.vectors.begin(); b != e.vectors.end(); ++b) {
      if (a == b) continue;
      // queries and gallery: the samples that have both modalities
      auto ia = e.index[a->first], ib = e.index[b->first];
      auto in_b = torch::isin(ia, ib), in_a = torch::isin(ib, ia);
      if (!in_b.any().item<bool>()) continue;
      auto r = retrieval_metrics(a->second.index({in_b}), b->second.index({in_a}), e.groups[a->first].index({in_b}),
                                 e.groups[b->first].index({in_a}));
      m["retrieval"][a->first + "->" + b->first] = r;
      sum_r1 += r.value("r1", 0.0);
      ++dirs;
    }
  m["mean_r1"] = dirs ? sum_r1 / dirs : 0.0;
  return m;
}

double headline_score(const nlohmann::json& m, Task task) {
  if (m.contains("score") && m["score"].is_number()) return m["score"].get<double>();  // models that score themselves
  switch (task) {
    case Task::Classify: return m.value("accuracy", 0.0);
    case Task::Regress: return m.value("ccc", -1.0);
    case Task::Align: return m.value("mean_r1", 0.0);
    case Task::Generate: return m.value("score", 0.0);
  }
  return 0.0;
}

const char* headline_name(Task task) {
  switch (task) {
    case Task::Classify: return "accuracy";
    case Task::Regress: return "ccc";
    case Task::Align: return "mean R@1";
    case Task::Generate: return "answer F1/accuracy";
  }
  return "";
}

}  // namespace braid::eval
