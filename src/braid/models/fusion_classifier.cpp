#include "braid/models/fusion_classifier.h"

#include <torch/torch.h>

namespace braid::models {

FusionClassifierImpl::FusionClassifierImpl(const Config& cfg, const ModelContext& ctx) : modalities_(ctx.modalities) {
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
  auto fcfg = cfg.at("fusion");
  fusion_ = nn::fusion_registry().make_named(fcfg.get<std::string>("name", "concat"), fcfg, fctx);
  register_module("fusion", fusion_);
  auto head = cfg.at("head");
  nn::MLPOptions ho;
  ho.in = fusion_->out_dim();
  ho.hidden = head.get<std::vector<int64_t>>("hidden", {128});
  ho.dropout = head.get<double>("dropout", 0.2);
  ho.out = ctx.outputs;
  head_ = register_module("head", nn::MLP(ho));
}

std::vector<torch::Tensor> FusionClassifierImpl::encode(const data::Batch& batch) {
  std::vector<torch::Tensor> feats;
  for (size_t i = 0; i < modalities_.size(); ++i) {
    auto it = batch.mods.find(modalities_[i]);
    TORCH_CHECK(it != batch.mods.end(), "batch has no '", modalities_[i], "' entry");
    feats.push_back(encoders_[i]->forward(it->second));
  }
  return feats;
}

torch::Tensor FusionClassifierImpl::forward(const data::Batch& batch) {
  auto feats = encode(batch);
  std::vector<torch::Tensor> pres;
  for (const auto& m : modalities_) pres.push_back(batch.mods.at(m).present);
  auto present = torch::stack(pres, 1).to(feats[0].dtype());  // [B, M]
  return head_->forward(fusion_->forward(feats, present));
}

}  // namespace braid::models
