#include "braid/models/fusion_classifier.h"

#include <torch/torch.h>

#include "braid/nn/fusion/late_confidence.h"
#include "braid/objectives/supervised.h"

namespace braid::models {

FusionClassifierImpl::FusionClassifierImpl(const Config& cfg, const ModelContext& ctx) : modalities_(ctx.modalities) {
  classify_ = ctx.task == Task::Classify;
  auto enc_cfg = cfg.at("encoders");
  nn::FusionContext fctx;
  for (const auto& m : modalities_) {
    BRAID_INPUT_CHECK(enc_cfg.has(m), "{}: recipe key '{}' is missing: modality '{}' needs an encoder", cfg.origin(),
                      enc_cfg.full(m), m);
    auto enc = nn::encoder_registry().make(enc_cfg.at(m), ctx.encoders.at(m));
    register_module("enc_" + m, enc);
    encoders_.push_back(enc);
    fctx.modalities.push_back(m);
    fctx.dims.push_back(enc->out_dim());
  }
  // encoders for modalities this model does not read are allowed (unimodal runs of a shared recipe)
  for (const auto& k : enc_cfg.keys())
    if (std::find(modalities_.begin(), modalities_.end(), k) == modalities_.end()) enc_cfg.mark_subtree(k);

  const int64_t cache_mb = cfg.get<int64_t>("frozen_cache_mb", 256);
  BRAID_INPUT_CHECK(cache_mb >= 0, "{}: recipe key '{}' must be >= 0 (MiB; 0 = no cache), got {}", cfg.origin(),
                    cfg.full("frozen_cache_mb"), cache_mb);
  for (const auto& m : cfg.get<std::vector<std::string>>("freeze", {})) {
    auto it = std::find(modalities_.begin(), modalities_.end(), m);
    if (it == modalities_.end()) {
      // a unimodal run of a shared recipe may name an encoder it does not read; anything else is a typo
      BRAID_INPUT_CHECK(enc_cfg.has(m), "{}: recipe key '{}': '{}' names no encoder of model.encoders", cfg.origin(),
                        cfg.full("freeze"), m);
      continue;
    }
    const auto i = static_cast<size_t>(it - modalities_.begin());
    for (auto& p : encoders_[i]->parameters()) p.requires_grad_(false);
    encoders_[i]->eval();
    // shared with other models of this process that freeze the same tower (nn/frozen_cache.h)
    frozen_.emplace(i, nn::FrozenFeatureCache(cache_mb << 20, enc_cfg.at(m).dump()));
  }
  cfg.mark_subtree("init_from");  // read by the trainer (train/trainer.cpp)

  auto head = cfg.at("head");
  nn::MLPOptions ho;
  ho.hidden = head.get<std::vector<int64_t>>("hidden", {128});
  ho.dropout = head.get<double>("dropout", 0.2);
  ho.out = ctx.outputs;
  modality_dropout_ = cfg.get<double>("modality_dropout", 0.0);
  aux_weight_ = cfg.get<double>("aux_heads", 0.0);
  BRAID_INPUT_CHECK(modality_dropout_ >= 0 && modality_dropout_ < 1, "{}: recipe key '{}' must be in [0, 1)", cfg.origin(),
                    cfg.full("modality_dropout"));
  BRAID_INPUT_CHECK(aux_weight_ >= 0, "{}: recipe key '{}' must be >= 0", cfg.origin(), cfg.full("aux_heads"));

  auto fcfg = cfg.at("fusion");
  const std::string fname = fcfg.get<std::string>("name", "concat");
  if (fname == "late_mean") late_ = Late::Mean;
  else if (fname == "late_weighted") late_ = Late::Weighted;
  else if (fname == "late_poe") late_ = Late::Poe;
  else if (fname == "late_conf") {
    late_ = Late::Conf;
    conf_power_ = fcfg.get<double>("power", 1.0);
    BRAID_INPUT_CHECK(conf_power_ >= 0 && conf_power_ <= 16, "{}: recipe key '{}' must be in [0, 16], got {}",
                      fcfg.origin(), fcfg.full("power"), conf_power_);
    BRAID_INPUT_CHECK(classify_ && ctx.outputs >= 2, "{}: fusion 'late_conf' needs task classify with 2 or more classes",
                      fcfg.origin());
    const auto cal = fcfg.get<std::string>("calibrate", "none");
    BRAID_INPUT_CHECK(cal == "none" || cal == "temperature" || cal == "rank" || cal == "shift",
                      "{}: recipe key '{}' must be none, temperature, rank or shift, got '{}'", fcfg.origin(),
                      fcfg.full("calibrate"), cal);
    conf_floor_ = fcfg.get<double>("floor", 0.0);
    BRAID_INPUT_CHECK(conf_floor_ >= 0 && conf_floor_ < 1, "{}: recipe key '{}' must be in [0, 1), got {}", fcfg.origin(),
                      fcfg.full("floor"), conf_floor_);
    shift_k_ = fcfg.get<int64_t>("shift_k", 5);
    shift_alpha_ = fcfg.get<double>("shift_alpha", 0.1);
    BRAID_INPUT_CHECK(shift_k_ >= 1 && shift_k_ < kShiftRef, "{}: recipe key '{}' must be in [1, {}), got {}",
                      fcfg.origin(), fcfg.full("shift_k"), kShiftRef, shift_k_);
    BRAID_INPUT_CHECK(shift_alpha_ > 0 && shift_alpha_ <= 1, "{}: recipe key '{}' must be in (0, 1], got {}",
                      fcfg.origin(), fcfg.full("shift_alpha"), shift_alpha_);
    const auto M = static_cast<int64_t>(modalities_.size());
    if (cal == "temperature") expert_temperature_ = register_buffer("expert_temperature", torch::ones({M}));
    // -1 until calibrated: the raw confidence is used (training and its validation are unchanged)
    if (cal == "rank") conf_ranks_ = register_buffer("expert_confidence_ranks", torch::full({M, kRankQ}, -1.0));
    if (cal == "shift") {
      for (size_t i = 0; i < modalities_.size(); ++i)
        shift_ref_.push_back(register_buffer("expert_shift_ref_" + modalities_[i], torch::zeros({kShiftRef, fctx.dims[i]})));
      shift_n_ = register_buffer("expert_shift_n", torch::zeros({M}, torch::kLong));  // 0 until calibrated
      shift_dist_ = register_buffer("expert_shift_dist", torch::zeros({M, kRankQ}));
    }
  }
  if (late_ != Late::None || aux_weight_ > 0) {
    modality_heads_ = register_module("modality_heads", torch::nn::ModuleList());
    for (size_t i = 0; i < modalities_.size(); ++i) {
      auto o = ho;
      o.in = fctx.dims[i];
      modality_heads_->push_back(nn::MLP(o));
    }
  }
  if (late_ == Late::Weighted)
    late_weights_ = register_parameter("late_weights", torch::zeros({static_cast<int64_t>(modalities_.size())}));
  if (late_ == Late::None) {
    fusion_ = nn::fusion_registry().make_named(fname, fcfg, fctx);
    register_module("fusion", fusion_);
    ho.in = fusion_->out_dim();
    head_ = register_module("head", nn::MLP(ho));
  }
}

std::vector<torch::Tensor> FusionClassifierImpl::encode(const Batch& batch, torch::Tensor* present) {
  std::vector<torch::Tensor> feats, pres;
  for (size_t i = 0; i < modalities_.size(); ++i) {
    auto it = batch.mods.find(modalities_[i]);
    TORCH_CHECK(it != batch.mods.end(), "batch has no '", modalities_[i], "' entry");
    auto fz = frozen_.find(i);
    feats.push_back(fz != frozen_.end() ? fz->second.forward(*encoders_[i], it->second)
                                        : encoders_[i]->forward(it->second));
    pres.push_back(it->second.present);
  }
  if (present) *present = torch::stack(pres, 1).to(feats[0].dtype());  // [B, M]
  return feats;
}

void FusionClassifierImpl::train(bool on) {
  ModelImpl::train(on);
  for (const auto& f : frozen_) encoders_[f.first]->eval();
}

torch::Tensor FusionClassifierImpl::expert_logits(const std::vector<torch::Tensor>& feats) {
  std::vector<torch::Tensor> outs;
  for (size_t i = 0; i < feats.size(); ++i) outs.push_back(modality_heads_[i]->as<nn::MLP>()->forward(feats[i]));
  auto o = torch::stack(outs, 1);  // [B, M, K]
  return expert_temperature_.defined() ? o / expert_temperature_.to(o.dtype()).view({1, -1, 1}) : o;
}

std::string FusionClassifierImpl::calibrate(const std::vector<Batch>& val) {
  if (!calibrates()) return "";
  torch::NoGradGuard ng;
  const bool was_training = is_training();
  eval();
  if (expert_temperature_.defined()) expert_temperature_.fill_(1.0);
  if (conf_ranks_.defined()) conf_ranks_.fill_(-1.0);
  if (shift_n_.defined()) shift_n_.zero_();
  std::vector<torch::Tensor> logits, pres, labels;
  std::vector<std::vector<torch::Tensor>> feats(modalities_.size());
  for (const auto& b : val) {
    if (!b.labels.defined()) continue;
    torch::Tensor present;
    auto f = encode(b, &present);
    logits.push_back(expert_logits(f));
    for (size_t i = 0; i < f.size(); ++i) feats[i].push_back(f[i]);
    pres.push_back(present);
    labels.push_back(b.labels);
  }
  std::string summary = expert_temperature_.defined() ? "expert temperatures on the validation split:"
                        : shift_n_.defined()          ? "expert k-NN feature distances on the validation split:"
                                                      : "expert confidence quantiles on the validation split:";
  if (logits.empty()) {
    train(was_training);
    return summary + " no labelled batch, all 1";
  }
  auto z = torch::cat(logits), p = torch::cat(pres), y = torch::cat(labels);
  for (size_t i = 0; i < modalities_.size(); ++i) {
    const auto m = static_cast<int64_t>(i);
    auto rows = p.select(1, m).gt(0).nonzero().squeeze(1);
    if (rows.numel() == 0) {
      summary += fmt::format(" {} 1 (no rows)", modalities_[i]);
      if (conf_ranks_.defined()) conf_ranks_[m].copy_(torch::linspace(0, 1, kRankQ));  // rank ~ c itself
      continue;
    }
    auto zm = z.select(1, m).index_select(0, rows), ym = y.index_select(0, rows);
    if (shift_n_.defined()) {  // up to kShiftRef evenly spaced rows: their features and k-NN distances
      auto x = torch::cat(feats[i]).index_select(0, rows);
      if (x.size(0) > kShiftRef)
        x = x.index_select(0, torch::linspace(0, x.size(0) - 1, kShiftRef, torch::kDouble).round().to(torch::kLong));
      if (x.size(0) <= shift_k_) {
        summary += fmt::format(" {} not fitted ({} rows, shift_k {})", modalities_[i], x.size(0), shift_k_);
        continue;
      }
      auto d = nn::knn_distance(x.to(torch::kDouble), x.to(torch::kDouble), shift_k_, /*leave_one_out=*/true);
      auto q = torch::quantile(d, torch::linspace(0, 1, kRankQ, torch::kDouble));
      shift_ref_[i].zero_().narrow(0, 0, x.size(0)).copy_(x.to(shift_ref_[i].dtype()));
      shift_dist_[m].copy_(q.to(shift_dist_.dtype()));
      shift_n_[m] = x.size(0);
      summary += fmt::format(" {} median {:.3f} ({} rows)", modalities_[i], q[kRankQ / 2].item<double>(), x.size(0));
      continue;
    }
    if (conf_ranks_.defined()) {  // expert m's confidences at kRankQ evenly spaced quantiles
      auto c = nn::expert_confidence(torch::log_softmax(zm.unsqueeze(1), -1)).squeeze(1).to(torch::kDouble);
      auto q = torch::quantile(c, torch::linspace(0, 1, kRankQ, torch::kDouble));
      conf_ranks_[m].copy_(q.to(conf_ranks_.dtype()));
      summary += fmt::format(" {} median {:.3f} ({} rows)", modalities_[i], q[kRankQ / 2].item<double>(), rows.size(0));
      continue;
    }
    const double t = nn::fit_temperature(zm, ym);
    expert_temperature_[m] = t;
    summary += fmt::format(" {} {:.3f} (NLL {:.3f} -> {:.3f}, {} rows)", modalities_[i], t,
                           nn::temperature_nll(zm, ym, 1.0), nn::temperature_nll(zm, ym, t), rows.size(0));
  }
  train(was_training);
  return summary;
}

torch::Tensor FusionClassifierImpl::shift_trust_of(const std::vector<torch::Tensor>& feats) {
  if (!shift_n_.defined() || shift_n_.max().item<int64_t>() == 0) return {};
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> t;
  for (size_t i = 0; i < feats.size(); ++i) {
    const auto n = shift_n_[static_cast<int64_t>(i)].item<int64_t>();
    if (n <= shift_k_) {  // not fitted: full trust
      t.push_back(torch::ones({feats[i].size(0)}, feats[i].options()));
      continue;
    }
    auto d = nn::knn_distance(feats[i].detach(), shift_ref_[i].narrow(0, 0, n), shift_k_);
    t.push_back(nn::shift_trust(d, shift_dist_[static_cast<int64_t>(i)], shift_alpha_));
  }
  return torch::stack(t, 1);  // [B, M]
}

torch::Tensor FusionClassifierImpl::combine_late(const std::vector<torch::Tensor>& feats, const torch::Tensor& present) {
  auto o = expert_logits(feats);                       // [B, M, K]
  auto mask = present.unsqueeze(-1);                   // [B, M, 1]
  auto count = present.sum(1, true).clamp_min(1);      // [B, 1]
  if (!classify_) {
    // regression experts: the mean of the present experts' outputs
    return (o * mask).sum(1) / count;
  }
  auto logp = torch::log_softmax(o, -1);
  if (late_ == Late::Poe) return (logp * mask).sum(1);  // product of experts, renormalized by the loss
  if (late_ == Late::Conf) {
    // floor: each expert's distribution mixed with the uniform one, (1 - floor) p + floor / K, so no
    // expert can veto a class by more than log(floor / K)
    if (conf_floor_ > 0)
      logp = torch::logaddexp(logp + std::log1p(-conf_floor_), torch::full_like(logp, std::log(conf_floor_ / logp.size(-1))));
    const bool ranked = conf_ranks_.defined() && conf_ranks_.min().item<double>() >= 0;
    return nn::confidence_fuse(logp, present, conf_power_, ranked ? conf_ranks_ : torch::Tensor(), shift_trust_of(feats));
  }
  torch::Tensor w;                                      // [B, M] weights over present experts
  if (late_ == Late::Weighted) {
    auto logits = late_weights_.unsqueeze(0).expand_as(present).masked_fill(present.eq(0), -1e9);
    w = torch::softmax(logits, 1);
  } else {
    w = present / count;
  }
  // log of the weighted mean of probabilities, computed stably
  return torch::logsumexp(logp + torch::log(w.clamp_min(1e-30)).unsqueeze(-1), 1);
}

torch::Tensor FusionClassifierImpl::forward(const Batch& batch) {
  torch::Tensor present;
  auto feats = encode(batch, &present);
  if (is_training() && modality_dropout_ > 0 && modalities_.size() > 1) {
    // hide each present modality with probability p, keeping at least one per sample
    auto keep = (torch::rand_like(present) >= modality_dropout_).to(present.dtype()) * present;
    auto none_left = keep.sum(1, true).eq(0);
    keep = torch::where(none_left, present, keep);
    for (size_t i = 0; i < feats.size(); ++i) feats[i] = feats[i] * keep.select(1, i).unsqueeze(1);
    present = keep;
  }
  aux_loss_ = torch::Tensor();
  if (is_training() && aux_weight_ > 0 && classify_ && batch.labels.defined()) {
    torch::Tensor aux = torch::zeros({}, feats[0].options());
    for (size_t i = 0; i < feats.size(); ++i) {
      auto rows = present.select(1, i).nonzero().squeeze(1);
      if (rows.numel() == 0) continue;
      auto logits = modality_heads_[i]->as<nn::MLP>()->forward(feats[i].index_select(0, rows));
      aux = aux + objectives::cross_entropy(logits, batch.labels.index_select(0, rows));
    }
    aux_loss_ = aux_weight_ * aux;
  }
  if (late_ != Late::None) return combine_late(feats, present);
  return head_->forward(fusion_->forward(feats, present));
}

}  // namespace braid::models
