#include "braid/models/dual_tower.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "braid/core/error.h"
#include "braid/core/op_profile.h"
#include "braid/objectives/contrastive.h"
#include "braid/objectives/gather.h"
#include "braid/objectives/cca.h"
#include "braid/objectives/cycle.h"
#include "braid/objectives/multitask.h"
#include "braid/objectives/ranking.h"
#include "braid/nn/encoders/image_vit.h"

namespace braid::models {

const std::map<std::string, AlignLoss>& DualTowerImpl::losses() {
  static const std::map<std::string, AlignLoss> table = [] {
    std::map<std::string, AlignLoss> t;
    AlignLoss clip;
    clip.doc = "CLIP: symmetric InfoNCE over the batch with a learned temperature (Radford 2021)";
    clip.gathered = true;
    clip.compute = [](DualTowerImpl& m, const AlignLoss::Rows& r) {
      return objectives::clip_loss(r.ua, r.ub, m.logit_scale_, m.smoothing_, m.chunk_);
    };
    t["clip"] = clip;
    AlignLoss siglip;
    siglip.doc = "SigLIP: pairwise sigmoid loss with a learned scale and bias (Zhai 2023)";
    siglip.gathered = true;
    siglip.setup = [](DualTowerImpl& m, const Config&, const ModelContext&) {
      torch::NoGradGuard ng;
      m.logit_scale_.fill_(std::log(10.0));
      m.bias_ = m.register_parameter("bias", torch::tensor(-10.0));
    };
    siglip.compute = [](DualTowerImpl& m, const AlignLoss::Rows& r) {
      return objectives::siglip_loss(r.ua, r.ub, m.logit_scale_, m.bias_);
    };
    t["siglip"] = siglip;
    AlignLoss dcca;
    dcca.doc = "Deep CCA: maximize the top-k canonical correlations of the raw projections (Andrew 2013)";
    dcca.raw = true;
    dcca.compute = [](DualTowerImpl& m, const AlignLoss::Rows& r) -> torch::Tensor {
      if (r.xa.size(0) <= m.embed_dim_) return {};  // the covariance needs more rows than dimensions
      return objectives::dcca_loss(r.xa, r.xb, m.dcca_k_, m.dcca_r_);
    };
    t["dcca"] = dcca;
    AlignLoss cycle;
    cycle.doc = "cycle consistency: MLP translators a->b->a and b->a->b in the shared space";
    cycle.setup = [](DualTowerImpl& m, const Config&, const ModelContext&) {
      for (const auto& [a, b] : m.pairs_)
        for (const auto& k : {a + "_to_" + b, b + "_to_" + a})
          m.translators_.emplace(k, m.register_module("cyc_" + k, nn::MLP(nn::MLPOptions{m.embed_dim_, {m.embed_dim_},
                                                                                          m.embed_dim_, 0.0})));
    };
    cycle.compute = [](DualTowerImpl& m, const AlignLoss::Rows& r) {
      auto& ab = m.translators_.at(r.a + "_to_" + r.b);
      auto& ba = m.translators_.at(r.b + "_to_" + r.a);
      auto a2b = ab->forward(r.ua), b2a = ba->forward(r.ub);
      return objectives::cycle_loss(r.ua, r.ub, a2b, b2a, ba->forward(a2b), ab->forward(b2a));
    };
    t["cycle"] = cycle;
    AlignLoss devise;
    devise.doc = "DeViSE: hinge ranking of each non-text embedding against the text embeddings of the class names "
                 "(Frome 2013; needs labels and text)";
    devise.pairwise = false;
    devise.setup = [](DualTowerImpl& m, const Config& cfg, const ModelContext& ctx) {
      BRAID_INPUT_CHECK(m.encoders_.count("text"),
                        "{}: recipe key '{}': devise needs the text modality (class-name embeddings)", cfg.origin(),
                        cfg.full("loss"));
      if (ctx.class_text.defined()) {
        m.class_text_ = m.register_buffer("class_text", ctx.class_text.clone());
        m.class_len_ = m.register_buffer("class_len", ctx.class_text_lengths.clone());
      }
      BRAID_INPUT_CHECK(ctx.task != Task::Align || m.class_text_.defined(),
                        "{}: recipe key '{}': devise needs labelled training data (class names)", cfg.origin(),
                        cfg.full("loss"));
    };
    devise.compute = [](DualTowerImpl& m, const AlignLoss::Rows& r) {
      return objectives::devise_loss(r.ua.matmul(m.class_embeddings().t()), r.labels, m.margin_);
    };
    t["devise"] = devise;
    return t;
  }();
  return table;
}

DualTowerImpl::DualTowerImpl(const Config& cfg, const ModelContext& ctx) : modalities_(ctx.modalities) {
  auto enc_cfg = cfg.at("encoders");
  embed_dim_ = cfg.get<int64_t>("embed_dim", embed_dim_);
  BRAID_INPUT_CHECK(embed_dim_ > 0, "{}: recipe key '{}' must be positive", cfg.origin(), cfg.full("embed_dim"));
  auto pcfg = cfg.at("projection");
  auto hidden = pcfg.get<std::vector<int64_t>>("hidden", {});
  double pdrop = pcfg.get<double>("dropout", 0.0);
  // identity: the encoders already end in the shared space (imported CLIP/SigLIP towers, run/hf_clip.h)
  const bool identity = pcfg.get<bool>("identity", false);
  for (const auto& m : modalities_) {
    BRAID_INPUT_CHECK(enc_cfg.has(m), "{}: recipe key '{}' is missing: modality '{}' needs an encoder", cfg.origin(),
                      enc_cfg.full(m), m);
    auto enc = nn::encoder_registry().make(enc_cfg.at(m), ctx.encoders.at(m));
    encoders_[m] = register_module("enc_" + m, enc);
    if (identity) {
      BRAID_INPUT_CHECK(enc->out_dim() == embed_dim_ && hidden.empty(),
                        "{}: recipe key '{}': an identity projection needs no hidden layers and encoder '{}' of width "
                        "embed_dim {}, got {}",
                        cfg.origin(), pcfg.full("identity"), m, embed_dim_, enc->out_dim());
      continue;
    }
    projections_.emplace(m, register_module("proj_" + m, nn::MLP(nn::MLPOptions{enc->out_dim(), hidden, embed_dim_, pdrop})));
  }
  for (const auto& k : enc_cfg.keys())
    if (!encoders_.count(k)) enc_cfg.mark_subtree(k);
  auto prj = cfg.at("projectors");
  for (const auto& m : prj.keys()) {
    BRAID_INPUT_CHECK(encoders_.count(m), "{}: recipe key '{}': '{}' is not one of the model's modalities", cfg.origin(),
                      prj.full(m), m);
    BRAID_INPUT_CHECK(projections_.count(m), "{}: recipe key '{}': a projector needs a projection (not identity)",
                      cfg.origin(), prj.full(m));
    auto* vit = dynamic_cast<nn::ImageViTImpl*>(encoders_[m].get());
    BRAID_INPUT_CHECK(vit, "{}: recipe key '{}': a projector reads encoder tokens; only image_vit provides them",
                      cfg.origin(), prj.full(m));
    projectors_.emplace(m, register_module("prj_" + m, nn::Projector(nn::ProjectorOptions::from_config(prj.at(m)),
                                                                     encoders_[m]->out_dim())));
  }
  const int64_t cache_mb = cfg.get<int64_t>("frozen_cache_mb", 256);
  BRAID_INPUT_CHECK(cache_mb >= 0, "{}: recipe key '{}' must be >= 0 (MiB; 0 = no cache), got {}", cfg.origin(),
                    cfg.full("frozen_cache_mb"), cache_mb);
  for (const auto& m : cfg.get<std::vector<std::string>>("freeze", {})) {
    BRAID_INPUT_CHECK(encoders_.count(m), "{}: recipe key '{}': '{}' is not one of the model's modalities", cfg.origin(),
                      cfg.full("freeze"), m);
    frozen_.insert(m);
    // shared with other models of this process that freeze the same tower (nn/frozen_cache.h)
    frozen_cache_.emplace(m, nn::FrozenFeatureCache(cache_mb << 20, enc_cfg.at(m).dump()));
    for (auto& p : encoders_[m]->parameters()) p.requires_grad_(false);
    encoders_[m]->eval();
  }
  cfg.mark_subtree("init_from");  // read by the trainer (train/trainer.cpp): a run directory or a list

  // objectives: one name or a list
  YAML::Node ln = cfg.node()["loss"];
  if (ln && ln.IsSequence())
    losses_ = cfg.get<std::vector<std::string>>("loss", {});
  else
    losses_ = {cfg.get<std::string>("loss", "clip")};
  BRAID_INPUT_CHECK(!losses_.empty(), "{}: recipe key '{}' is empty", cfg.origin(), cfg.full("loss"));
  std::vector<std::string> known;
  for (const auto& [name, l] : losses()) known.push_back(name);
  for (const auto& l : losses_)
    BRAID_INPUT_CHECK(losses().count(l), "{}: recipe key '{}': unknown loss '{}' (known: {}; `braid list losses`)",
                      cfg.origin(), cfg.full("loss"), l, fmt::join(known, ", "));
  auto wcfg = cfg.at("loss_weights");
  for (const auto& k : wcfg.keys()) {
    BRAID_INPUT_CHECK(std::find(losses_.begin(), losses_.end(), k) != losses_.end(),
                      "{}: recipe key '{}': '{}' is not one of the losses in '{}'", cfg.origin(), wcfg.full(k), k,
                      cfg.full("loss"));
    weights_[k] = wcfg.get<double>(k, 1.0);
  }
  auto has = [&](const char* l) { return std::find(losses_.begin(), losses_.end(), l) != losses_.end(); };

  const std::string anchor = cfg.get<std::string>("anchor", "");
  if (!anchor.empty()) {
    BRAID_INPUT_CHECK(encoders_.count(anchor), "{}: recipe key '{}': anchor '{}' is not one of the model's modalities",
                      cfg.origin(), cfg.full("anchor"), anchor);
    for (const auto& m : modalities_)
      if (m != anchor) pairs_.emplace_back(anchor, m);
  } else {
    for (size_t i = 0; i < modalities_.size(); ++i)
      for (size_t j = i + 1; j < modalities_.size(); ++j) pairs_.emplace_back(modalities_[i], modalities_[j]);
  }
  bool pair_loss = std::any_of(losses_.begin(), losses_.end(), [](const std::string& l) { return losses().at(l).pairwise; });
  // embed_only: a tower that only embeds (an imported checkpoint, `braid import`); training it is refused
  const bool embed_only = cfg.get<bool>("embed_only", false);
  BRAID_INPUT_CHECK(!pair_loss || !pairs_.empty() || embed_only, "{}: recipe key '{}': the pair losses need two modalities, the model has {}",
                    cfg.origin(), cfg.full("loss"), modalities_.size());

  smoothing_ = cfg.get<double>("label_smoothing", smoothing_);
  chunk_ = cfg.get<int64_t>("chunk", chunk_);
  margin_ = cfg.get<double>("margin", margin_);
  dcca_k_ = cfg.get<int64_t>("dcca_k", dcca_k_);
  dcca_r_ = cfg.get<double>("dcca_r", dcca_r_);
  BRAID_INPUT_CHECK(smoothing_ >= 0 && smoothing_ < 1, "{}: recipe key '{}' must be in [0, 1)", cfg.origin(),
                    cfg.full("label_smoothing"));

  logit_scale_ = register_parameter("logit_scale", torch::tensor(std::log(1 / 0.07)));
  for (const auto& [name, l] : losses())  // registry order: the parameter order does not depend on the recipe's
    if (has(name.c_str()) && l.setup) l.setup(*this, cfg, ctx);
}

double DualTowerImpl::temperature() const { return 1.0 / std::exp(logit_scale_.item<double>()); }

void DualTowerImpl::train(bool on) {
  ModelImpl::train(on);
  for (const auto& m : frozen_) encoders_.at(m)->eval();
}

torch::Tensor DualTowerImpl::project(const std::string& modality, const ModalityBatch& mb) {
  auto it = encoders_.find(modality);
  if (it == encoders_.end() || !mb.data.defined()) return {};
  auto pj = projectors_.find(modality);
  if (pj != projectors_.end()) {
    auto* vit = static_cast<nn::ImageViTImpl*>(it->second.get());
    torch::Tensor tok;
    if (frozen_.count(modality)) {
      torch::NoGradGuard ng;
      tok = vit->tokens(mb.data);
    } else {
      tok = vit->tokens(mb.data);
    }
    auto h = pj->second->forward(tok) * mb.present.to(tok.dtype()).unsqueeze(1);
    return projections_.at(modality)->forward(h);
  }
  auto fc = frozen_cache_.find(modality);
  auto h = fc != frozen_cache_.end() ? fc->second.forward(*it->second, mb) : it->second->forward(mb);
  auto pr = projections_.find(modality);
  BRAID_OP_SCOPE("tower.projection");  // per-op timing (core/op_profile.h)
  return pr == projections_.end() ? h : pr->second->forward(h);  // identity projection: none
}

torch::Tensor DualTowerImpl::embed(const std::string& modality, const ModalityBatch& mb) {
  auto p = project(modality, mb);
  BRAID_OP_SCOPE("tower.normalize");
  return p.defined() ? torch::nn::functional::normalize(p, torch::nn::functional::NormalizeFuncOptions().dim(1)) : p;
}

torch::Tensor DualTowerImpl::forward(const Batch& batch) {
  for (const auto& m : modalities_) {
    auto it = batch.mods.find(m);
    if (it != batch.mods.end() && it->second.data.defined()) return embed(m, it->second);
  }
  TORCH_CHECK(false, "dual_tower: the batch has none of the model's modalities");
  return {};
}

torch::Tensor DualTowerImpl::class_embeddings() {
  ModalityBatch mb{class_text_, class_len_, torch::ones({class_text_.size(0)}, torch::kBool).to(class_text_.device())};
  return embed("text", mb);
}

torch::Tensor DualTowerImpl::objective(const Batch& batch) {
  namespace F = torch::nn::functional;
  std::map<std::string, torch::Tensor> raw, emb, present;
  for (const auto& m : modalities_) {
    auto it = batch.mods.find(m);
    if (it == batch.mods.end() || !it->second.data.defined()) continue;
    raw[m] = project(m, it->second);
    emb[m] = F::normalize(raw[m], F::NormalizeFuncOptions().dim(1));
    present[m] = it->second.present.to(torch::kBool);
  }
  std::map<std::string, torch::Tensor> per_loss;
  std::map<std::string, int> n_pairs;
  terms_.clear();
  auto add = [&](const std::string& loss, const std::string& pair, const torch::Tensor& v) {
    per_loss[loss] = per_loss.count(loss) ? per_loss[loss] + v : v;
    ++n_pairs[loss];
    terms_[loss + "/" + pair] = v.item<double>();
  };
  BRAID_INPUT_CHECK(!pairs_.empty() || std::any_of(losses_.begin(), losses_.end(),
                                                     [](const std::string& l) { return !losses().at(l).pairwise; }),
                    "dual_tower: one modality ({}) and only pair losses: nothing to align (an imported tower trains "
                    "through model.init_from in a recipe with two modalities)", modalities_.front());
  const bool global = objectives::gathering();  // data-parallel training: objectives/gather.h
  for (const auto& name : losses_) {
    const auto& loss = losses().at(name);
    if (!loss.pairwise) {
      if (!batch.labels.defined()) continue;
      auto labelled = batch.labels.ge(0);
      for (const auto& m : modalities_) {
        if (m == "text" || !emb.count(m)) continue;
        auto keep = labelled.logical_and(present[m]);
        if (!keep.any().item<bool>()) continue;
        AlignLoss::Rows r{m, "label", emb[m].index({keep}), {}, {}, {}, batch.labels.index({keep})};
        if (auto v = loss.compute(*this, r); v.defined()) add(name, m + "-label", v);
      }
      continue;
    }
    for (const auto& [a, b] : pairs_) {
      // Batch-coupled losses in data-parallel training: over every rank's rows. Each rank gathers
      // for every pair, also with no rows of its own, so that the collectives match.
      const bool gather = global && loss.gathered;
      AlignLoss::Rows r{a, b, {}, {}, {}, {}, {}};
      if (emb.count(a) && emb.count(b)) {
        auto both = present[a].logical_and(present[b]);
        r.ua = emb[a].index({both});
        r.ub = emb[b].index({both});
        if (loss.raw) {
          r.xa = raw[a].index({both});
          r.xb = raw[b].index({both});
        }
      } else if (!gather) {
        continue;
      } else {
        r.ua = r.ub = torch::zeros({0, embed_dim_}, logit_scale_.options());
      }
      if (gather) std::tie(r.ua, r.ub) = objectives::gather_pairs(r.ua, r.ub);
      if (r.ua.size(0) < 2) continue;
      if (auto v = loss.compute(*this, r); v.defined()) add(name, a + "-" + b, v);
    }
  }
  std::map<std::string, torch::Tensor> terms;
  for (auto& [k, v] : per_loss) terms[k] = v / n_pairs[k];
  terms_["temperature"] = temperature();
  if (bias_.defined()) terms_["bias"] = bias_.item<double>();
  if (terms.empty()) {
    // nothing to align in this batch (e.g. a DCCA batch smaller than embed_dim): a zero loss with a graph
    torch::Tensor z = logit_scale_ * 0;
    for (auto& [m, r] : raw) z = z + r.sum() * 0;
    return z;
  }
  std::map<std::string, double> logged, weights;
  for (const auto& [k, w] : weights_)
    if (terms.count(k)) weights[k] = w;  // a loss may sit out a batch (no labels, DCCA batch too small)
  auto total = objectives::weighted_sum(terms, weights, &logged);
  for (auto& [k, v] : logged) terms_[k] = v;
  return total;
}

}  // namespace braid::models
