#include "braid/eval/zeroshot.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "braid/core/error.h"

namespace braid::eval {

namespace F = torch::nn::functional;

const std::vector<std::string>& default_templates() {
  static const std::vector<std::string> t = {"{}", "an emoji of {}", "a picture of {}", "an icon of {}",
                                             "a photo of {}"};
  return t;
}

torch::Tensor average_prompt_embeddings(const torch::Tensor& prompts) {
  auto e = F::normalize(prompts, F::NormalizeFuncOptions().dim(-1)).mean(1);
  return F::normalize(e, F::NormalizeFuncOptions().dim(-1));
}

torch::Tensor zeroshot_logits(const torch::Tensor& x, const torch::Tensor& classes) {
  return 100.0 * F::normalize(x, F::NormalizeFuncOptions().dim(-1)).matmul(classes.t());
}

torch::Tensor class_embeddings(Pipeline& p, const std::vector<std::string>& names,
                               const std::vector<std::string>& templates) {
  BRAID_INPUT_CHECK(p.tokenizer, "zero-shot classification needs a run with a text tower");
  BRAID_INPUT_CHECK(!templates.empty(), "zero-shot classification needs at least one prompt template");
  std::vector<std::string> prompts;
  for (const auto& n : names)
    for (const auto& t : templates) {
      auto pos = t.find("{}");
      prompts.push_back(pos == std::string::npos ? t + " " + n : t.substr(0, pos) + n + t.substr(pos + 2));
    }
  torch::NoGradGuard ng;
  bool was_training = p.model->is_training();
  p.model->eval();
  auto mb = run::text_batch(*p.pre, prompts).to(p.device);
  auto e = p.model->embed("text", mb);
  p.model->train(was_training);
  BRAID_INPUT_CHECK(e.defined(), "zero-shot classification: the model does not embed text");
  e = e.to(torch::kCPU).to(torch::kFloat);
  return average_prompt_embeddings(e.reshape({static_cast<int64_t>(names.size()), static_cast<int64_t>(templates.size()), -1}));
}

double topk_accuracy(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  if (logits.size(0) == 0) return 0.0;
  k = std::min<int64_t>(k, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.unsqueeze(1)).any(1).to(torch::kDouble).mean().item<double>();
}

// Class ids of embedded samples (manifest indices) -> [n] (-1 for unlabelled / unknown classes).
static torch::Tensor labels_of(const data::Loader& loader, const data::ClassMap& classes, const torch::Tensor& index) {
  auto out = torch::full({index.numel()}, -1, torch::kLong);
  auto ia = index.accessor<int64_t, 1>();
  auto oa = out.accessor<int64_t, 1>();
  const auto& names = classes.names();
  for (int64_t i = 0; i < index.numel(); ++i) {
    const auto& s = loader.manifest().samples()[ia[i]];
    if (!s.label) continue;
    auto it = std::find(names.begin(), names.end(), *s.label);
    if (it != names.end()) oa[i] = it - names.begin();
  }
  return out;
}

nlohmann::json evaluate_zeroshot(Pipeline& p, data::Loader& loader, const std::vector<std::string>& templates) {
  BRAID_INPUT_CHECK(p.classes, "zero-shot classification needs the run's class map (train on labelled data)");
  auto cls = class_embeddings(p, p.classes->names(), templates);
  auto e = embed_all(p, loader, "zero-shot");
  const int64_t K = p.classes->size();
  nlohmann::json m = {{"classes", K}, {"chance_top1", 1.0 / K}, {"chance_top5", std::min<double>(5.0, K) / K},
                      {"templates", templates}, {"zeroshot", nlohmann::json::object()}};
  double sum = 0;
  int n = 0;
  for (const auto& [mod, v] : e.vectors) {
    if (mod == "text") continue;
    auto y = labels_of(loader, *p.classes, e.index.at(mod));
    auto keep = y.ge(0);
    if (!keep.any().item<bool>()) continue;
    auto logits = zeroshot_logits(v.index({keep}), cls);
    auto yk = y.index({keep});
    double t1 = topk_accuracy(logits, yk, 1), t5 = topk_accuracy(logits, yk, 5);
    m["zeroshot"][mod] = {{"top1", t1}, {"top5", t5}, {"n", yk.numel()}};
    sum += t1;
    ++n;
  }
  BRAID_INPUT_CHECK(n > 0, "zero-shot classification: no labelled sample of a non-text modality in the split");
  m["mean_top1"] = sum / n;
  return m;
}

nlohmann::json evaluate_probe(Pipeline& p, data::Loader& train, data::Loader& test, double l2) {
  BRAID_INPUT_CHECK(p.classes, "a linear probe needs the run's class map (train on labelled data)");
  auto etr = embed_all(p, train, "probe train"), ete = embed_all(p, test, "probe test");
  const int64_t K = p.classes->size();
  nlohmann::json m = {{"classes", K}, {"chance_top1", 1.0 / K}, {"l2", l2}, {"probe", nlohmann::json::object()}};
  for (const auto& [mod, xtr_all] : etr.vectors) {
    if (!ete.vectors.count(mod)) continue;
    auto ytr = labels_of(train, *p.classes, etr.index.at(mod));
    auto yte = labels_of(test, *p.classes, ete.index.at(mod));
    auto ktr = ytr.ge(0), kte = yte.ge(0);
    if (!ktr.any().item<bool>() || !kte.any().item<bool>()) continue;
    auto xtr = xtr_all.index({ktr}), xte = ete.vectors.at(mod).index({kte});
    ytr = ytr.index({ktr});
    yte = yte.index({kte});
    torch::manual_seed(0);
    auto W = torch::zeros({xtr.size(1), K}, torch::requires_grad());
    auto b = torch::zeros({K}, torch::requires_grad());
    torch::optim::LBFGS opt(std::vector<torch::Tensor>{W, b}, torch::optim::LBFGSOptions(1.0).max_iter(300).line_search_fn("strong_wolfe"));
    auto closure = [&] {
      opt.zero_grad();
      auto loss = F::cross_entropy(xtr.matmul(W) + b, ytr) + l2 * W.pow(2).sum();
      loss.backward();
      return loss;
    };
    opt.step(closure);
    torch::NoGradGuard ng;
    auto lt = xte.matmul(W) + b;
    m["probe"][mod] = {{"top1", topk_accuracy(lt, yte, 1)},
                       {"top5", topk_accuracy(lt, yte, 5)},
                       {"train_top1", topk_accuracy(xtr.matmul(W) + b, ytr, 1)},
                       {"n_train", ytr.numel()},
                       {"n", yte.numel()}};
  }
  return m;
}

}  // namespace braid::eval
