// braid/eval/cmg.cpp — cross-modal generalization: train a head on one modality, test it on another.
#include "braid/eval/cmg.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "braid/core/error.h"
#include "braid/objectives/codebook.h"

namespace braid::eval {

namespace {

// Class ids of samples by manifest index (-1: no label or an unknown one).
torch::Tensor labels_of(const Pipeline& p, const data::Manifest& m, const torch::Tensor& index) {
  auto y = torch::full({index.numel()}, -1, torch::kLong);
  auto ia = index.accessor<int64_t, 1>();
  auto ya = y.accessor<int64_t, 1>();
  const auto& names = p.classes->names();
  for (int64_t i = 0; i < index.numel(); ++i) {
    const auto& s = m.samples()[ia[i]];
    if (!s.label) continue;
    auto it = std::find(names.begin(), names.end(), *s.label);
    if (it != names.end()) ya[i] = it - names.begin();
  }
  return y;
}

torch::nn::Sequential make_head(int64_t in, int64_t classes, int64_t hidden) {
  torch::nn::Sequential h;
  if (hidden > 0) {
    h->push_back(torch::nn::Linear(in, hidden));
    h->push_back(torch::nn::ReLU());
    h->push_back(torch::nn::Linear(hidden, classes));
  } else {
    h->push_back(torch::nn::Linear(in, classes));
  }
  return h;
}

// rows of x [N, ..] rotated by N/2 (the chance pairing of the code-agreement statistic)
torch::Tensor shift_half(const torch::Tensor& x) { return x.size(0) > 1 ? x.roll(x.size(0) / 2, 0) : x; }

}  // namespace

nlohmann::json evaluate_cmg(Pipeline& p, const std::shared_ptr<const data::Manifest>& manifest, const CmgOptions& o) {
  BRAID_INPUT_CHECK(p.classes && p.classes->size() > 1,
                    "cmg: the run has no class map; CMG needs labelled data (e.g. data/emoji)");
  BRAID_INPUT_CHECK(!manifest->split_indices(o.train_split).empty() && !manifest->split_indices(o.test_split).empty(),
                    "{}: cmg needs samples in splits '{}' and '{}'", manifest->path(), o.train_split, o.test_split);
  auto train_loader = p.loader(manifest, o.train_split, false);
  auto test_loader = p.loader(manifest, o.test_split, false);
  auto tr = embed_all(p, *train_loader, "cmg embed " + o.train_split);
  auto te = embed_all(p, *test_loader, "cmg embed " + o.test_split);
  BRAID_INPUT_CHECK(!tr.vectors.empty(), "cmg: the model embeds none of the run's modalities");
  const int64_t K = p.classes->size();
  nlohmann::json r = {{"task", "cmg"}, {"classes", K}, {"chance", 1.0 / K}, {"pairs", nlohmann::json::object()},
                      {"train_split", o.train_split}, {"test_split", o.test_split}, {"head_epochs", o.epochs},
                      {"head_hidden", o.hidden}};
  double cross_sum = 0;
  int cross_n = 0;
  for (const auto& [a, xa] : tr.vectors) {
    auto ya = labels_of(p, *manifest, tr.index[a]);
    auto keep = ya >= 0;
    auto x = xa.index({keep}), y = ya.index({keep});
    if (x.size(0) == 0) continue;
    torch::manual_seed(o.seed);
    auto head = make_head(x.size(1), K, o.hidden);
    torch::optim::Adam opt(head->parameters(), torch::optim::AdamOptions(o.lr));
    for (int64_t e = 0; e < o.epochs; ++e) {
      opt.zero_grad();
      auto l = torch::nn::functional::cross_entropy(head->forward(x), y);
      l.backward();
      opt.step();
    }
    torch::NoGradGuard ng;
    for (const auto& [b, xb_all] : te.vectors) {
      auto yb_all = labels_of(p, *manifest, te.index[b]);
      auto kb = yb_all >= 0;
      auto xb = xb_all.index({kb}), yb = yb_all.index({kb});
      if (xb.size(0) == 0) continue;
      auto pred = head->forward(xb).argmax(1);
      double acc = (pred == yb).to(torch::kDouble).mean().item<double>();
      double majority = torch::bincount(yb, {}, K).max().item<double>() / static_cast<double>(yb.numel());
      r["pairs"][a + "->" + b] = {{"acc", acc}, {"majority", majority}, {"n_train", x.size(0)}, {"n_test", xb.size(0)}};
      if (a != b) {
        cross_sum += acc;
        ++cross_n;
      }
    }
  }
  r["mean_cross"] = cross_n ? cross_sum / cross_n : 0.0;
  if (te.vectors.size() >= 2) {
    auto al = evaluate_alignment(p, *test_loader, "cmg retrieval " + o.test_split);
    r["retrieval"] = al["retrieval"];
    r["mean_r1"] = al.value("mean_r1", 0.0);
  }
  // code health on the test split (unicode models)
  const auto caps = p.model->capabilities();
  if (caps.codes > 0) {
    auto* u = p.model.get();
    torch::NoGradGuard ng;
    bool was = u->is_training();
    u->eval();
    std::map<std::string, std::vector<torch::Tensor>> codes, paired;  // paired: rows with every modality
    test_loader->start_epoch(0);
    while (auto b = test_loader->next()) {
      auto batch = b->to(p.device);
      std::map<std::string, torch::Tensor> idx, pres;
      for (const auto& m : caps.embeds) {
        auto it = batch.mods.find(m);
        if (it == batch.mods.end()) continue;
        pres[m] = it->second.present.to(torch::kBool).cpu();
        idx[m] = u->codes(m, it->second).cpu();
        codes[m].push_back(idx[m].index({pres[m]}));
      }
      if (idx.size() != caps.embeds.size()) continue;
      torch::Tensor all;
      for (auto& [m, pm] : pres) all = all.defined() ? all.logical_and(pm) : pm;
      for (auto& [m, im] : idx) paired[m].push_back(im.index({all}));
    }
    u->train(was);
    const int64_t C = caps.codes;
    nlohmann::json cj = nlohmann::json::object();
    for (auto& [m, v] : codes) {
      auto st = objectives::code_stats(torch::cat(v), C);
      cj[m] = {{"perplexity", st.perplexity}, {"used", st.used}};
    }
    r["codes"] = cj;
    nlohmann::json agree = nlohmann::json::object();
    for (auto a = paired.begin(); a != paired.end(); ++a)
      for (auto b = std::next(a); b != paired.end(); ++b)
        agree[a->first + "_" + b->first] = objectives::code_agreement(torch::cat(a->second), torch::cat(b->second), C);
    r["code_agreement"] = agree;
    // chance level: the same codes with b's rows shifted by half their number, so that every row meets an
    // unpaired one (neighbouring rows of a split can be the same emoji; rows half a split apart are not)
    nlohmann::json chance = nlohmann::json::object();
    for (auto a = paired.begin(); a != paired.end(); ++a)
      for (auto b = std::next(a); b != paired.end(); ++b)
        chance[a->first + "_" + b->first] =
            objectives::code_agreement(torch::cat(a->second), shift_half(torch::cat(b->second)), C);
    r["code_agreement_chance"] = chance;
    r["live_codes"] = u->live_codes();
  }
  return r;
}

std::string format_cmg(const nlohmann::json& r) {
  std::string out = fmt::format("cross-modal generalization: head trained on A ({}), tested on B ({}); {} classes, "
                                "chance 1/K = {:.3f}\n",
                                r.value("train_split", ""), r.value("test_split", ""), r.value("classes", 0),
                                r.value("chance", 0.0));
  out += fmt::format("  {:<16} {:>8} {:>10} {:>8}\n", "A->B", "acc", "majority", "n_test");
  for (auto& [k, v] : r["pairs"].items())
    out += fmt::format("  {:<16} {:>8.4f} {:>10.4f} {:>8}\n", k, v["acc"].get<double>(), v["majority"].get<double>(),
                       v["n_test"].get<int64_t>());
  out += fmt::format("  mean over A != B: {:.4f}\n", r.value("mean_cross", 0.0));
  if (r.contains("mean_r1")) out += fmt::format("  retrieval mean R@1: {:.4f}\n", r["mean_r1"].get<double>());
  if (r.contains("codes"))
    for (auto& [m, v] : r["codes"].items())
      out += fmt::format("  codes {:<8} perplexity {:.2f}, used {}\n", m, v["perplexity"].get<double>(),
                         v["used"].get<int64_t>());
  if (r.contains("code_agreement"))
    for (auto& [k, v] : r["code_agreement"].items())
      out += fmt::format("  code agreement {:<14} {:.4f}{}\n", k, v.get<double>(),
                         r.contains("code_agreement_chance")
                             ? fmt::format(" (unpaired rows: {:.4f})", r["code_agreement_chance"][k].get<double>())
                             : std::string());
  return out;
}

}  // namespace braid::eval
