#include "braid/models/single_tower.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "braid/core/error.h"
#include "braid/objectives/contrastive.h"
#include "braid/objectives/gather.h"
#include "braid/objectives/itm.h"
#include "braid/objectives/masking.h"
#include "braid/objectives/multitask.h"
#include "braid/nn/blocks.h"
#include "braid/nn/sequence.h"

namespace braid::models {

namespace F = torch::nn::functional;
static const std::map<std::string, int64_t> kType = {{"text", 0}, {"image", 1}, {"audio", 2}};

SingleTowerImpl::SingleTowerImpl(const Config& cfg, const ModelContext& ctx) : modalities_(ctx.modalities) {
  for (const auto& m : modalities_)
    BRAID_INPUT_CHECK(kType.count(m), "{}: recipe key '{}': single_tower reads image, text and audio, not '{}'",
                      cfg.origin(), cfg.full("modalities"), m);
  auto has = [&](const char* m) { return std::find(modalities_.begin(), modalities_.end(), m) != modalities_.end(); };
  BRAID_INPUT_CHECK(has("image") && has("text"), "{}: recipe key '{}': single_tower needs image and text",
                    cfg.origin(), cfg.full("modalities"));
  dim_ = cfg.get<int64_t>("dim", dim_);
  const int64_t depth = cfg.get<int64_t>("depth", 3), heads = cfg.get<int64_t>("heads", 4);
  const int64_t mlp_ratio = cfg.get<int64_t>("mlp_ratio", 2);
  const double dropout = cfg.get<double>("dropout", 0.1);
  patch_ = cfg.get<int64_t>("patch", patch_);
  audio_stride_ = cfg.get<int64_t>("audio_stride", audio_stride_);
  max_text_ = cfg.get<int64_t>("max_text", max_text_);
  embed_dim_ = cfg.get<int64_t>("embed_dim", embed_dim_);
  mask_prob_ = cfg.get<double>("mask_prob", mask_prob_);
  patch_mask_prob_ = cfg.get<double>("patch_mask_prob", patch_mask_prob_);
  mrc_bins_ = cfg.get<int64_t>("mrc_bins", mrc_bins_);
  auto w = cfg.at("weights");
  for (const char* k : {"itc", "itm", "mlm"}) weights_[k] = w.get<double>(k, 1.0);
  for (const char* k : {"mrfr", "mrc"}) weights_[k] = w.get<double>(k, 0.0);
  for (const auto& [k, v] : weights_)
    BRAID_INPUT_CHECK(std::isfinite(v) && v >= 0, "{}: recipe key '{}' must be a finite weight >= 0, got {}",
                      cfg.origin(), cfg.full("weights." + k), v);
  BRAID_INPUT_CHECK(patch_mask_prob_ > 0 && patch_mask_prob_ <= 1, "{}: recipe key '{}' must be in (0, 1]",
                    cfg.origin(), cfg.full("patch_mask_prob"));
  BRAID_INPUT_CHECK(mrc_bins_ >= 2 && mrc_bins_ <= 16, "{}: recipe key '{}' must be in [2, 16], got {}",
                    cfg.origin(), cfg.full("mrc_bins"), mrc_bins_);
  BRAID_INPUT_CHECK(dim_ > 0 && heads > 0 && dim_ % heads == 0, "{}: '{}': dim must be a positive multiple of heads",
                    cfg.origin(), cfg.path());
  BRAID_INPUT_CHECK(mask_prob_ > 0 && mask_prob_ < 1, "{}: recipe key '{}' must be in (0, 1)", cfg.origin(),
                    cfg.full("mask_prob"));
  const auto& ie = ctx.encoders.at("image");
  image_mean_ = ie.image_mean;
  image_std_ = ie.image_std;
  BRAID_INPUT_CHECK(patch_ > 0 && ie.image_size >= patch_, "{}: recipe key '{}': patch {} does not fit {}-px images",
                    cfg.origin(), cfg.full("patch"), patch_, ie.image_size);
  vocab_ = ctx.encoders.at("text").vocab_size;
  TORCH_CHECK(vocab_ > 0, "single_tower: the tokenizer vocabulary is empty");
  mask_id_ = vocab_;  // one extra id for [MASK]

  tok_ = register_module("tok", torch::nn::Embedding(torch::nn::EmbeddingOptions(vocab_ + 1, dim_).padding_idx(0)));
  text_pos_ = register_parameter("text_pos", torch::randn({1, max_text_, dim_}) * 0.02);
  patch_embed_ = register_module("patch", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, dim_, patch_).stride(patch_)));
  const int64_t side = ie.image_size / patch_;
  image_pos_ = register_parameter("image_pos", torch::randn({1, side * side, dim_}) * 0.02);
  if (has("audio")) {
    BRAID_INPUT_CHECK(audio_stride_ >= 1, "{}: recipe key '{}' must be at least 1", cfg.origin(), cfg.full("audio_stride"));
    audio_embed_ = register_module(
        "audio", torch::nn::Conv1d(torch::nn::Conv1dOptions(ctx.encoders.at("audio").n_mels, dim_, audio_stride_)
                                       .stride(audio_stride_)));
  }
  type_ = register_module("type", torch::nn::Embedding(3, dim_));
  cls_ = register_parameter("cls", torch::randn({1, 1, dim_}) * 0.02);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i)
    blocks_->push_back(nn::TransformerBlock(nn::TransformerBlockOptions{dim_, heads, mlp_ratio, dropout}));
  ln_ = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim_})));
  itm_ = register_module("itm", torch::nn::Linear(dim_, 2));
  mlm_ = register_module("mlm", torch::nn::Linear(dim_, vocab_));
  for (const auto& m : modalities_) proj_.emplace(m, register_module("proj_" + m, torch::nn::Linear(dim_, embed_dim_)));
  logit_scale_ = register_parameter("logit_scale", torch::tensor(std::log(1 / 0.07)));
  // registered last and only when used: runs without MRFR / MRC keep their parameters and init draws
  if (weight("mrfr") > 0 || weight("mrc") > 0)
    patch_mask_token_ = register_parameter("patch_mask", torch::randn({1, 1, dim_}) * 0.02);
  if (weight("mrfr") > 0) mrfr_ = register_module("mrfr", torch::nn::Linear(dim_, 3 * patch_ * patch_));
  if (weight("mrc") > 0) mrc_ = register_module("mrc", torch::nn::Linear(dim_, mrc_bins_ * mrc_bins_ * mrc_bins_));
}

torch::Tensor SingleTowerImpl::patch_pixels(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) % patch_ == 0 && images.size(3) % patch_ == 0,
              "single_tower: patch_pixels needs [B, 3, H, W] images with H and W multiples of ", patch_, ", got ",
              images.sizes());
  const int64_t B = images.size(0), h = images.size(2) / patch_, w = images.size(3) / patch_;
  // [B, 3, h, p, w, p] -> [B, h, w, 3, p, p] -> [B, h·w, 3·p·p]
  return images.reshape({B, 3, h, patch_, w, patch_}).permute({0, 2, 4, 1, 3, 5}).reshape({B, h * w, 3 * patch_ * patch_});
}

torch::Tensor SingleTowerImpl::colour_bins(const torch::Tensor& pixels) const {
  torch::NoGradGuard ng;
  const int64_t B = pixels.size(0), N = pixels.size(1);
  auto mean = pixels.reshape({B, N, 3, -1}).mean(-1);  // [B, N, 3] normalized mean colour
  auto opt = pixels.options();
  auto m = image_mean_.size() == 3 ? torch::tensor(image_mean_, opt.dtype(torch::kDouble)).to(opt) : torch::zeros({3}, opt);
  auto s = image_std_.size() == 3 ? torch::tensor(image_std_, opt.dtype(torch::kDouble)).to(opt) : torch::ones({3}, opt);
  auto rgb = (mean * s + m).clamp(0.0, 1.0);           // [0, 1]
  auto bin = (rgb * static_cast<double>(mrc_bins_)).floor().to(torch::kLong).clamp_max(mrc_bins_ - 1);
  return (bin.select(2, 0) * mrc_bins_ + bin.select(2, 1)) * mrc_bins_ + bin.select(2, 2);
}

SingleTowerImpl::Tokens SingleTowerImpl::tokens(const std::string& modality, const ModalityBatch& mb,
                                                const torch::Tensor& ids_override, const torch::Tensor& patch_mask) {
  Tokens t;
  auto type = type_->weight[kType.at(modality)];
  if (modality == "text") {
    auto ids = ids_override.defined() ? ids_override : mb.data;
    auto len = mb.lengths;
    if (ids.size(1) > max_text_) {
      ids = ids.slice(1, 0, max_text_);
      len = len.clamp_max(max_text_);
    }
    const int64_t L = ids.size(1);
    t.x = tok_->forward(ids) + text_pos_.slice(1, 0, L) + type;
    t.pad = nn::padding_mask(len.clamp_min(1), L);
  } else if (modality == "image") {
    auto x = patch_embed_->forward(mb.data).flatten(2).transpose(1, 2);
    BRAID_INPUT_CHECK(x.size(1) == image_pos_.size(1), "single_tower: {}x{} images give {} patches, the model has {}",
                      mb.data.size(2), mb.data.size(3), x.size(1), image_pos_.size(1));
    if (patch_mask.defined()) x = torch::where(patch_mask.unsqueeze(-1), patch_mask_token_.to(x.dtype()), x);
    t.x = x + image_pos_ + type;
    t.pad = torch::zeros({x.size(0), x.size(1)}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
  } else {
    auto x = mb.data;  // [B, n_mels, T]
    if (x.size(2) < audio_stride_) x = F::pad(x, F::PadFuncOptions({0, audio_stride_ - x.size(2)}));
    auto h = audio_embed_->forward(x).transpose(1, 2);  // [B, T', dim]
    const int64_t T = h.size(1);
    t.x = h + nn::sinusoidal_positions(T, dim_, h.options()).unsqueeze(0) + type;
    auto len = ((mb.lengths + audio_stride_ - 1) / audio_stride_).clamp(1, T);
    t.pad = nn::padding_mask(len, T);
  }
  return t;
}

torch::Tensor SingleTowerImpl::encode(const std::vector<Tokens>& parts) {
  const int64_t B = parts[0].x.size(0);
  std::vector<torch::Tensor> xs = {cls_.expand({B, 1, dim_})}, pads;
  pads.push_back(torch::zeros({B, 1}, parts[0].pad.options()));
  for (const auto& p : parts) {
    xs.push_back(p.x);
    pads.push_back(p.pad);
  }
  auto x = torch::cat(xs, 1);
  auto pad = torch::cat(pads, 1);
  for (auto& b : *blocks_) x = b->as<nn::TransformerBlock>()->forward(x, pad);
  return ln_->forward(x);
}

torch::Tensor SingleTowerImpl::itm_head(const torch::Tensor& cls) { return itm_->forward(cls); }

torch::Tensor SingleTowerImpl::embed(const std::string& modality, const ModalityBatch& mb) {
  if (!proj_.count(modality) || !mb.data.defined()) return {};
  auto cls = encode({tokens(modality, mb)}).select(1, 0);
  return F::normalize(proj_.at(modality)->forward(cls), F::NormalizeFuncOptions().dim(1));
}

ModelImpl::Capabilities SingleTowerImpl::capabilities() const {
  Capabilities c;
  for (const auto& m : modalities_)
    if (proj_.count(m)) c.embeds.push_back(m);
  c.matches = proj_.count("image") && proj_.count("text");
  return c;
}

torch::Tensor SingleTowerImpl::match_logits(const ModalityBatch& image, const ModalityBatch& text) {
  auto l = itm_head(encode({tokens("text", text), tokens("image", image)}).select(1, 0));
  return l.select(1, 1) - l.select(1, 0);
}

torch::Tensor SingleTowerImpl::forward(const Batch& batch) {
  for (const auto& m : modalities_) {
    auto it = batch.mods.find(m);
    if (it != batch.mods.end() && it->second.data.defined()) return embed(m, it->second);
  }
  TORCH_CHECK(false, "single_tower: the batch has none of the model's modalities");
  return {};
}

// Rows of a modality batch.
static ModalityBatch rows(const ModalityBatch& mb, const torch::Tensor& idx) {
  return {mb.data.index_select(0, idx), mb.lengths.index_select(0, idx), mb.present.index_select(0, idx)};
}

torch::Tensor SingleTowerImpl::objective(const Batch& batch) {
  terms_.clear();
  // rows that have both image and text drive ITM / MLM; ITC pairs use their own intersections
  std::map<std::string, ModalityBatch> mods;
  for (const auto& m : modalities_) {
    auto it = batch.mods.find(m);
    if (it != batch.mods.end() && it->second.data.defined()) mods[m] = it->second;
  }
  std::map<std::string, torch::Tensor> emb;
  for (auto& [m, mb] : mods) emb[m] = embed(m, mb);
  std::map<std::string, torch::Tensor> terms;
  torch::Tensor itc;
  int n_pairs = 0;
  const bool global = objectives::gathering();  // data-parallel training: objectives/gather.h
  for (const auto& m : modalities_) {
    if (m == "image") continue;
    torch::Tensor ui, um;
    if (emb.count(m) && emb.count("image")) {
      auto both = mods["image"].present.to(torch::kBool).logical_and(mods[m].present.to(torch::kBool));
      ui = emb["image"].index({both});
      um = emb[m].index({both});
    } else if (!global) {
      continue;
    } else {  // every rank gathers for every modality, also with no rows of its own
      ui = um = torch::zeros({0, embed_dim_}, logit_scale_.options());
    }
    if (global) std::tie(ui, um) = objectives::gather_pairs(ui, um);
    if (ui.size(0) < 2) continue;
    auto l = objectives::clip_loss(ui, um, logit_scale_);
    terms_["itc/image-" + m] = l.item<double>();
    itc = itc.defined() ? itc + l : l;
    ++n_pairs;
  }
  if (itc.defined()) terms["itc"] = itc / n_pairs;

  if (mods.count("image") && mods.count("text")) {
    auto both = mods["image"].present.to(torch::kBool).logical_and(mods["text"].present.to(torch::kBool));
    auto idx = both.nonzero().squeeze(1);
    const int64_t B = idx.numel();
    auto im = B >= 2 ? rows(mods["image"], idx) : ModalityBatch{};
    auto tx = B >= 2 ? rows(mods["text"], idx) : ModalityBatch{};
    if (B >= 2 && weight("itm") > 0) {
      // hard negatives from the contrastive similarities; identical texts are never negatives
      torch::Tensor sim;
      {
        torch::NoGradGuard ng;
        sim = emb["image"].index_select(0, idx).matmul(emb["text"].index_select(0, idx).t()) *
              logit_scale_.exp().clamp_max(100.0);
        auto ids = tx.data;
        auto same = (ids.unsqueeze(1) == ids.unsqueeze(0)).all(2);  // [B, B] identical token ids
        sim = sim.masked_fill(same.logical_and(torch::eye(B, same.options()).logical_not()), -1e4);
      }
      auto neg_text = objectives::sample_hard_negatives(sim);      // for each image
      auto neg_image = objectives::sample_hard_negatives(sim.t());  // for each text
      // 1 positive : 2 negatives
      auto pos = encode({tokens("text", tx), tokens("image", im)}).select(1, 0);
      auto n1 = encode({tokens("text", rows(tx, neg_text)), tokens("image", im)}).select(1, 0);
      auto n2 = encode({tokens("text", tx), tokens("image", rows(im, neg_image))}).select(1, 0);
      auto logits = itm_head(torch::cat({pos, n1, n2}));
      auto target = torch::cat({torch::ones({B}, torch::kLong), torch::zeros({2 * B}, torch::kLong)}).to(logits.device());
      terms["itm"] = objectives::itm_loss(logits, target);
      {
        torch::NoGradGuard ng;
        terms_["itm_acc"] = logits.argmax(1).eq(target).to(torch::kDouble).mean().item<double>();
      }
    }
    const int64_t L = B >= 2 ? std::min(tx.data.size(1), max_text_) : 0;  // text tokens of a fused pass
    if (B >= 2 && weight("mlm") > 0) {
      // MLM on a separate fused pass with masked text
      auto ids = tx.data.slice(1, 0, L);
      auto masked = objectives::mask_tokens(ids.cpu(), mask_id_, vocab_, mask_prob_);
      auto out = encode({tokens("text", tx, masked.input.to(ids.device())), tokens("image", im)});
      auto text_out = out.slice(1, 1, 1 + L);
      terms["mlm"] = objectives::mlm_loss(nn::linear(mlm_, text_out), masked.targets.to(ids.device()));
    }
    if (B >= 2 && (weight("mrfr") > 0 || weight("mrc") > 0)) {
      // MRFR / MRC on one more fused pass: clean text, masked image patches
      auto pixels = patch_pixels(im.data).detach();  // [B, N, 3·p²]
      const int64_t N = pixels.size(1);
      auto pmask = objectives::mask_patches(B, N, patch_mask_prob_).to(im.data.device());
      auto out = encode({tokens("text", tx), tokens("image", im, {}, pmask)});
      auto image_out = out.slice(1, 1 + L, 1 + L + N);  // [B, N, dim]
      if (weight("mrfr") > 0)
        terms["mrfr"] = objectives::mrfr_loss(nn::linear(mrfr_, image_out), pixels.to(image_out.dtype()), pmask);
      if (weight("mrc") > 0) {
        auto logits = nn::linear(mrc_, image_out);  // [B, N, bins³]
        auto bins = colour_bins(pixels);
        terms["mrc"] = objectives::mrc_loss(logits, bins, pmask);
        torch::NoGradGuard ng;
        terms_["mrc_acc"] = logits.argmax(-1).eq(bins).masked_select(pmask).to(torch::kDouble).mean().item<double>();
      }
    }
  }
  terms_["temperature"] = 1.0 / std::exp(logit_scale_.item<double>());
  if (terms.empty()) {
    torch::Tensor z = logit_scale_ * 0;
    for (auto& [m, e] : emb) z = z + e.sum() * 0;
    return z;
  }
  std::map<std::string, double> logged, weights;
  for (const auto& [k, w] : weights_)
    if (terms.count(k)) weights[k] = w;  // ITM / MLM / MRFR / MRC sit out a batch without two image-text rows
  auto total = objectives::weighted_sum(terms, weights, &logged);
  for (auto& [k, v] : logged) terms_[k] = v;
  // The head of a term weighted 0 is not run; a zero gradient keeps it under the optimizer (weight
  // decay) as when the term was computed and weighted 0, in one process and data-parallel alike.
  for (const auto& [k, head] : {std::make_pair("itm", itm_), std::make_pair("mlm", mlm_)})
    if (weight(k) == 0)
      for (const auto& p : head->parameters()) total = total + p.sum() * 0;
  return total;
}

}  // namespace braid::models
