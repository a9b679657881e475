// braid/models/unicode.cpp — Uni-Code: per-modality semantic/specific encoders, shared codebook, DCID losses.
#include "braid/models/unicode.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "braid/core/error.h"
#include "braid/objectives/cmcm.h"

namespace braid::models {

namespace {
using LayerNorms = std::map<std::string, torch::nn::LayerNorm>;
using BatchNorms = std::map<std::string, torch::nn::BatchNorm1d>;

// `kind` (semantic_norm / private_norm) applied to a branch output x [B, T, D]; "batch" takes its statistics over
// every (row, step) vector of this modality in the batch: [B, T, D] -> [B·T, D].
torch::Tensor normalize_branch(const std::string& kind, LayerNorms& ln, BatchNorms& bn, const std::string& m,
                               const torch::Tensor& x) {
  if (kind == "layer") return ln.at(m)->forward(x);
  if (kind == "batch") return bn.at(m)->forward(x.reshape({-1, x.size(-1)})).reshape(x.sizes());
  return x;
}

// A recipe key with a fixed set of string values, and "a, b or c" for its error message.
struct Choice {
  const char* key;
  std::string value;
  std::vector<std::string> allowed;
};
std::string one_of(const std::vector<std::string>& allowed) {
  std::string s;
  for (size_t i = 0; i < allowed.size(); ++i)
    s += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + allowed[i];
  return s;
}
}  // namespace

UnicodeOptions UnicodeOptions::from_config(const Config& c) {
  UnicodeOptions o;
  o.steps = c.get<int64_t>("steps", o.steps);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  o.text_layers = c.get<int64_t>("text_layers", o.text_layers);
  o.semantic_norm = c.get<std::string>("semantic_norm", o.semantic_norm);
  o.private_norm = c.get<std::string>("private_norm", o.private_norm);
  o.club_detach = c.get<std::string>("club_detach", o.club_detach);
  o.club_input = c.get<std::string>("club_input", o.club_input);
  auto& cb = o.codebook;
  cb.dim = o.dim;
  cb.codes = c.get<int64_t>("codes", 400);
  cb.decay = c.get<double>("decay", cb.decay);
  cb.epsilon = c.get<double>("epsilon", cb.epsilon);
  cb.beta = c.get<double>("beta", cb.beta);
  cb.mm_ema = c.get<bool>("mm_ema", cb.mm_ema);
  cb.teacher = c.get<std::string>("teacher", cb.teacher);
  cb.cross_commit = c.get<std::string>("cross_commit", cb.cross_commit);
  const bool reset = c.get<bool>("reset", true);
  cb.reset_after = c.get<int64_t>("reset_after", cb.reset_after);
  cb.recent = c.get<int64_t>("recent", cb.recent);
  if (!reset) cb.reset_after = 0;
  auto cl = c.at("club");
  o.club.hidden = cl.get<int64_t>("hidden", o.club.hidden);
  o.club.steps = cl.get<int64_t>("steps", o.club.steps);
  o.club.lr = cl.get<double>("lr", o.club.lr);
  auto cp = c.at("cpc");
  o.cpc.context = cp.get<int64_t>("context", o.cpc.context);
  o.cpc.horizon = cp.get<int64_t>("horizon", o.cpc.horizon);
  o.cpc.cross_weight = cp.get<double>("cross_weight", o.cpc.cross_weight);
  o.cpc.self_weight = cp.get<double>("self_weight", o.cpc.self_weight);
  auto w = c.at("weights");
  o.weights.recon = w.get<double>("recon", o.weights.recon);
  o.weights.commit = w.get<double>("commit", o.weights.commit);
  o.weights.club = w.get<double>("club", o.weights.club);
  o.weights.cpc = w.get<double>("cpc", o.weights.cpc);
  o.weights.cmcm = w.get<double>("cmcm", o.weights.cmcm);
  o.weights.nce = w.get<double>("nce", o.weights.nce);
  o.nce_temperature = c.get<double>("nce_temperature", o.nce_temperature);

  BRAID_INPUT_CHECK(o.steps > 1 && o.dim > 0 && o.hidden > 0 && o.text_layers >= 0 && cb.codes > 1,
                    "{}: '{}': steps must be > 1, dim, hidden and codes positive, text_layers >= 0", c.origin(),
                    c.path());
  BRAID_INPUT_CHECK(cb.decay > 0 && cb.decay < 1, "{}: recipe key '{}': expected a decay in (0, 1), got {}",
                    c.origin(), c.full("decay"), cb.decay);
  for (const auto& [key, value, allowed] : std::initializer_list<Choice>{
           {"teacher", cb.teacher, {"mean", "attention"}},
           {"cross_commit", cb.cross_commit, {"position", "nearest"}},
           {"semantic_norm", o.semantic_norm, {"batch", "layer", "none"}},
           {"private_norm", o.private_norm, {"batch", "layer", "none"}},
           {"club_detach", o.club_detach, {"none", "semantic"}},
           {"club_input", o.club_input, {"continuous", "quantized"}}})
    BRAID_INPUT_CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end(),
                      "{}: recipe key '{}': expected {}, got '{}'", c.origin(), c.full(key), one_of(allowed), value);
  BRAID_INPUT_CHECK(o.cpc.horizon > 0 && o.cpc.horizon < o.steps, "{}: recipe key '{}': expected 1 .. steps-1",
                    c.origin(), cp.full("horizon"));
  BRAID_INPUT_CHECK(o.club.steps >= 0 && o.club.lr > 0 && o.nce_temperature > 0,
                    "{}: '{}': club.steps >= 0, club.lr and nce_temperature > 0 expected", c.origin(), c.path());
  for (double v : {o.weights.recon, o.weights.commit, o.weights.club, o.weights.cpc, o.weights.cmcm, o.weights.nce})
    BRAID_INPUT_CHECK(v >= 0 && std::isfinite(v), "{}: recipe key '{}': weights must be finite and >= 0",
                      c.origin(), c.full("weights"));
  return o;
}

UnicodeImpl::UnicodeImpl(const Config& cfg, const ModelContext& ctx) : options(UnicodeOptions::from_config(cfg)) {
  const auto& o = options;
  mods_ = ctx.modalities;
  BRAID_INPUT_CHECK(!mods_.empty(), "{}: unicode needs at least one modality", cfg.origin());
  auto seq_cfg = cfg.at("sequences");
  auto branch = [&](int64_t in, int64_t out) {
    nn::MLPOptions mo;
    mo.in = in;
    mo.hidden = {o.hidden};
    mo.out = out;
    return nn::MLP(mo);
  };
  for (const auto& m : mods_) {
    ctx_[m] = ctx.encoders.at(m);
    auto seq = register_module("seq_" + m, nn::make_sequence(seq_cfg, ctx_[m]));
    seq_[m] = seq;
    const int64_t d = seq->out_dim();
    if (m == "text")
      for (int64_t l = 0; l < o.text_layers; ++l) {
        nn::TransformerBlockOptions to;
        to.dim = d;
        to.heads = d % 4 == 0 ? 4 : 1;
        to.ff_mult = 2;
        text_blocks_[m].push_back(register_module("text_block" + std::to_string(l), nn::TransformerBlock(to)));
      }
    // the norm modules of one branch (none registered for "none", so a run without them still loads)
    auto add_norm = [&](const std::string& kind, const std::string& name, LayerNorms& ln, BatchNorms& bn) {
      if (kind == "layer")
        ln.emplace(m, register_module(name + m, torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim}))));
      if (kind == "batch")
        bn.emplace(m, register_module(name + m,
                                      torch::nn::BatchNorm1d(torch::nn::BatchNormOptions(o.dim).affine(false))));
    };
    sem_.emplace(m, register_module("semantic_" + m, branch(d, o.dim)));
    add_norm(o.semantic_norm, "semantic_norm_", sem_ln_, sem_bn_);
    spec_.emplace(m, register_module("specific_" + m, branch(d, o.dim)));
    add_norm(o.private_norm, "private_norm_", priv_ln_, priv_bn_);
    const int64_t frames = m == "text" ? d : nn::frame_dim(ctx_[m]);
    dec_.emplace(m, register_module("decoder_" + m, branch(2 * o.dim, frames)));
    auto co = o.club;
    co.x_dim = co.y_dim = o.dim;
    club_.emplace(m, register_module("club_" + m, objectives::Club(co)));
  }
  codebook_ = register_module("codebook", objectives::SharedCodebook(o.codebook));
  auto cpo = o.cpc;
  cpo.modalities = static_cast<int64_t>(mods_.size());
  cpo.dim = o.dim;
  cpc_ = register_module("cpc", objectives::CrossCPC(cpo));
}

UnicodeImpl::Encoded UnicodeImpl::encode(const std::string& m, const ModalityBatch& mb) {
  auto f = seq_.at(m)->forward(mb);
  auto x = f.x;
  auto it = text_blocks_.find(m);
  if (it != text_blocks_.end() && !it->second.empty()) {
    auto pad = nn::padding_mask(f.lengths.clamp_min(1), x.size(1));
    for (auto& b : it->second) x = b->forward(x, pad);
  }
  x = nn::resample_nearest(x, f.lengths, options.steps);
  Encoded e;
  e.s = normalize_branch(options.semantic_norm, sem_ln_, sem_bn_, m, sem_.at(m)->forward(x));
  e.p = normalize_branch(options.private_norm, priv_ln_, priv_bn_, m, spec_.at(m)->forward(x));
  e.present = f.present.to(torch::kBool);
  return e;
}

torch::Tensor UnicodeImpl::codes(const std::string& m, const ModalityBatch& mb) {
  return codebook_->assign(encode(m, mb).s);
}

int64_t UnicodeImpl::live_codes() const { return codebook_->live_codes(); }

torch::Tensor UnicodeImpl::embed(const std::string& m, const ModalityBatch& mb) {
  if (!seq_.count(m)) return {};
  auto q = codebook_->quantize(encode(m, mb).s);
  return torch::nn::functional::normalize(q.st.mean(1), torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Tensor UnicodeImpl::forward(const Batch& batch) {
  for (const auto& m : mods_) {
    auto it = batch.mods.find(m);
    if (it != batch.mods.end()) return embed(m, it->second);
  }
  TORCH_CHECK(false, "unicode: the batch has none of the model's modalities");
  return {};
}

namespace {
torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& rows) { return x.index_select(0, rows); }
}  // namespace

torch::Tensor UnicodeImpl::objective(const Batch& batch) {
  const auto& o = options;
  const auto& w = o.weights;
  const int64_t M = static_cast<int64_t>(mods_.size());
  terms_.clear();
  // rows that have every modality (the paired samples)
  torch::Tensor all;
  std::vector<Encoded> enc;
  for (const auto& m : mods_) {
    auto it = batch.mods.find(m);
    BRAID_INPUT_CHECK(it != batch.mods.end(), "unicode: training batch has no '{}' data (the objective needs paired {})",
                      m, fmt::join(mods_, "+"));
    enc.push_back(encode(m, it->second));
    all = all.defined() ? all.logical_and(enc.back().present) : enc.back().present;
  }
  auto rows = all.nonzero().reshape(-1);
  auto zero = torch::zeros({}, enc[0].s.options());
  for (auto& e : enc) zero = zero + 0 * e.s.sum() + 0 * e.p.sum();  // keeps the graph valid when nothing is paired
  if (rows.numel() < 2) {
    terms_["paired_rows"] = static_cast<double>(rows.numel());
    return zero;
  }
  std::vector<torch::Tensor> s, p, q, st, idx;
  for (auto& e : enc) {
    s.push_back(select_rows(e.s, rows));
    p.push_back(select_rows(e.p, rows));
    auto qz = codebook_->quantize(s.back());
    q.push_back(qz.codes);
    st.push_back(qz.st);
    idx.push_back(qz.index);
  }
  auto codebook_now = codebook_->embedding().detach().clone();  // EMA updates below modify the buffer in place
  auto total = zero;

  if (w.recon > 0) {
    auto recon = zero;
    for (int64_t i = 0; i < M; ++i) {
      const auto& m = mods_[i];
      nn::SequenceFeatures fr;
      if (m == "text") {
        fr = seq_.at(m)->forward(batch.mods.at(m));
        fr.x = fr.x.detach();
      } else {
        fr = nn::raw_frames(batch.mods.at(m), ctx_.at(m));
      }
      auto target = select_rows(nn::resample_nearest(fr.x, fr.lengths, o.steps), rows);
      auto out = dec_.at(m)->forward(torch::cat({st[i], p[i]}, -1));
      auto l = torch::mse_loss(out, target);
      terms_["recon_" + m] = l.item<double>();
      recon = recon + l;
    }
    terms_["recon"] = recon.item<double>();
    total = total + w.recon * recon;
  }
  if (w.commit > 0) {
    auto commit = codebook_->commitment(s, q);
    terms_["commit"] = commit.item<double>();
    total = total + w.commit * commit;
  }
  if (w.club > 0) {
    auto club = zero;
    for (int64_t i = 0; i < M; ++i) {
      auto x = (o.club_input == "quantized" ? st[i] : s[i]).reshape({-1, o.dim}), y = p[i].reshape({-1, o.dim});
      auto& c = club_.at(mods_[i]);
      if (is_training() && torch::GradMode::is_enabled() && o.club.steps > 0) {
        torch::AutoGradMode on(true);
        terms_["club_nll_" + mods_[i]] = c->fit(x, y);
      }
      club = club + c->estimate(o.club_detach == "semantic" ? x.detach() : x, y, /*detach_params=*/true);
    }
    terms_["club"] = club.item<double>();
    total = total + w.club * club;
  }
  if (w.cpc > 0 && M > 1) {
    auto cpc = cpc_->forward(s);
    terms_["cpc"] = cpc.item<double>();
    total = total + w.cpc * cpc;
  }
  if (w.cmcm > 0 && M > 1) {
    auto cm = objectives::cmcm_loss(s, codebook_now);
    terms_["cmcm"] = cm.item<double>();
    total = total + w.cmcm * cm;
  }
  if (w.nce > 0 && M > 1) {
    auto nce = zero;
    std::vector<torch::Tensor> z;
    for (auto& x : s)
      z.push_back(torch::nn::functional::normalize(x.mean(1), torch::nn::functional::NormalizeFuncOptions().dim(1)));
    for (int64_t a = 0; a < M; ++a)
      for (int64_t b = 0; b < M; ++b)
        if (a != b) nce = nce + objectives::info_nce(z[a] / o.nce_temperature, z[b]);
    nce = nce / static_cast<double>(M * (M - 1));
    terms_["nce"] = nce.item<double>();
    total = total + w.nce * nce;
  }

  // health view and the codebook update (training only)
  for (int64_t i = 0; i < M; ++i) {
    auto stt = objectives::code_stats(idx[i], o.codebook.codes);
    terms_["ppl_" + mods_[i]] = stt.perplexity;
    terms_["used_" + mods_[i]] = static_cast<double>(stt.used);
    for (int64_t j = i + 1; j < M; ++j)
      terms_["agree_" + mods_[i] + "_" + mods_[j]] = objectives::code_agreement(idx[i], idx[j], o.codebook.codes);
  }
  if (is_training()) {
    codebook_->update(s, idx);
    terms_["resets"] = static_cast<double>(codebook_->last_resets());
  }
  terms_["live_codes"] = static_cast<double>(codebook_->live_codes());
  return total;
}

}  // namespace braid::models
