#include "braid/eval/rerank.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <limits>

#include "braid/core/error.h"
#include "braid/core/runtime.h"

namespace braid::eval {

namespace F = torch::nn::functional;

torch::Tensor rerank_ranks(const torch::Tensor& sim, const torch::Tensor& topk_idx, const torch::Tensor& rerank,
                           const torch::Tensor& relevant) {
  const int64_t N = sim.size(0), k = topk_idx.size(1);
  auto out = torch::empty({N}, torch::kDouble);
  auto oa = out.accessor<double, 1>();
  for (int64_t i = 0; i < N; ++i) {
    auto rel_top = relevant[i].index_select(0, topk_idx[i]);  // [k]
    if (rel_top.any().item<bool>()) {
      // best re-ranked score among the relevant candidates; rank = 1 + candidates scoring higher
      auto sc = rerank[i];
      auto best = sc.masked_fill(rel_top.logical_not(), -std::numeric_limits<float>::infinity()).max();
      oa[i] = (sc > best).sum().item<double>() + 1;
    } else {
      auto best = sim[i].masked_fill(relevant[i].logical_not(), -std::numeric_limits<float>::infinity()).max();
      oa[i] = std::max<double>((sim[i] > best).sum().item<double>() + 1, static_cast<double>(k + 1));
    }
  }
  return out;
}

// Gather every sample's image and text of a loader (text padded to the longest).
struct Gallery {
  torch::Tensor images, text, text_len, groups, has_image, has_text;
};

static Gallery gather(data::Loader& loader) {
  std::vector<torch::Tensor> im, tx, tl, hi, ht;
  std::vector<int64_t> index;
  int64_t L = 1;
  loader.start_epoch(0);
  while (auto b = loader.next()) {
    im.push_back(b->mods.at("image").data);
    hi.push_back(b->mods.at("image").present.to(torch::kBool));
    tx.push_back(b->mods.at("text").data);
    tl.push_back(b->mods.at("text").lengths);
    ht.push_back(b->mods.at("text").present.to(torch::kBool));
    L = std::max<int64_t>(L, b->mods.at("text").data.size(1));
    index.insert(index.end(), b->index.begin(), b->index.end());
  }
  for (auto& t : tx) t = F::pad(t, F::PadFuncOptions({0, L - t.size(1)}));
  Gallery g{torch::cat(im), torch::cat(tx), torch::cat(tl), torch::empty({static_cast<int64_t>(index.size())}, torch::kLong),
            torch::cat(hi), torch::cat(ht)};
  std::map<std::string, int64_t> ids;
  const auto& samples = loader.manifest().samples();
  auto ga = g.groups.accessor<int64_t, 1>();
  for (size_t i = 0; i < index.size(); ++i) {
    const auto& s = samples[index[i]];
    const std::string key = s.group.empty() ? "\x01" + s.id : s.group;
    ga[i] = ids.emplace(key, static_cast<int64_t>(ids.size())).first->second;
  }
  return g;
}

nlohmann::json evaluate_itm_rerank(Pipeline& p, data::Loader& loader, int64_t k) {
  BRAID_INPUT_CHECK(p.model->capabilities().matches,
                    "ITM re-ranking needs a model with an image-text matching head (e.g. single_tower)");
  torch::NoGradGuard ng;
  bool was_training = p.model->is_training();
  p.model->eval();
  auto g = gather(loader);
  auto both = g.has_image.logical_and(g.has_text);
  auto idx = both.nonzero().squeeze(1);
  const int64_t n = idx.numel();
  BRAID_INPUT_CHECK(n >= 2, "ITM re-ranking needs at least two samples with image and text");
  auto images = g.images.index_select(0, idx).to(p.device), text = g.text.index_select(0, idx).to(p.device);
  auto tlen = g.text_len.index_select(0, idx).to(p.device);
  auto groups = g.groups.index_select(0, idx);
  auto ones = torch::ones({n}, torch::kBool).to(p.device);
  ModalityBatch imb{images, torch::ones({n}, torch::kLong).to(p.device), ones}, tmb{text, tlen, ones};
  const int64_t bs = 256;
  auto embed_rows = [&](const std::string& m, const ModalityBatch& mb) {
    std::vector<torch::Tensor> out;
    for (int64_t s = 0; s < n; s += bs) {
      auto r = torch::arange(s, std::min(n, s + bs), torch::kLong).to(p.device);
      out.push_back(p.model->embed(m, {mb.data.index_select(0, r), mb.lengths.index_select(0, r),
                                       mb.present.index_select(0, r)}));
    }
    return torch::cat(out).to(torch::kCPU).to(torch::kFloat);
  };
  auto ei = embed_rows("image", imb), et = embed_rows("text", tmb);
  k = std::min<int64_t>(k, n);
  nlohmann::json m = {{"k", k}};
  for (const bool image_query : {true, false}) {
    auto sim = image_query ? ei.matmul(et.t()) : et.matmul(ei.t());  // [n, n]
    auto top = std::get<1>(sim.topk(k, 1));                           // [n, k]
    // ITM logits of every (query, candidate) pair, in chunks
    auto q = torch::arange(n, torch::kLong).unsqueeze(1).expand({n, k}).reshape({-1});
    auto c = top.reshape({-1});
    auto img_rows = image_query ? q : c, txt_rows = image_query ? c : q;
    std::vector<torch::Tensor> scores;
    for (int64_t s = 0; s < n * k; s += bs) {
      auto sl = torch::arange(s, std::min(n * k, s + bs), torch::kLong);
      auto ir = img_rows.index_select(0, sl).to(p.device), tr = txt_rows.index_select(0, sl).to(p.device);
      scores.push_back(p.model->match_logits({images.index_select(0, ir), torch::ones({ir.numel()}, torch::kLong).to(p.device),
                                         torch::ones({ir.numel()}, torch::kBool).to(p.device)},
                                        {text.index_select(0, tr), tlen.index_select(0, tr),
                                         torch::ones({tr.numel()}, torch::kBool).to(p.device)})
                           .to(torch::kCPU)
                           .to(torch::kFloat));
    }
    auto rr = torch::cat(scores).reshape({n, k});
    auto relevant = groups.view({-1, 1}).eq(groups.view({1, -1}));
    auto ranks = rerank_ranks(sim, top, rr, relevant);
    nlohmann::json r = {{"n", n}};
    for (int kk : {1, 5, 10}) r[fmt::format("r{}", kk)] = (ranks <= kk).to(torch::kDouble).mean().item<double>();
    r["median_rank"] = ranks.median().item<double>();
    r["mean_rank"] = ranks.mean().item<double>();
    m[image_query ? "image->text" : "text->image"] = r;
  }
  p.model->train(was_training);
  return m;
}

}  // namespace braid::eval
