#include "braid/models/mctn.h"

#include <torch/torch.h>

namespace braid::models {

MCTNOptions MCTNOptions::from_config(const Config& c) {
  MCTNOptions o;
  o.source = c.require<std::string>("source");
  o.target = c.require<std::string>("target");
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.steps = c.get<int64_t>("steps", o.steps);
  o.translation_weight = c.get<double>("translation_weight", o.translation_weight);
  o.cycle_weight = c.get<double>("cycle_weight", o.cycle_weight);
  auto h = c.at("head");
  o.head_hidden = h.get<std::vector<int64_t>>("hidden", o.head_hidden);
  o.head_dropout = h.get<double>("dropout", o.head_dropout);
  BRAID_INPUT_CHECK(o.source != o.target, "{}: recipe keys '{}' and '{}' name the same modality '{}'", c.origin(),
                    c.full("source"), c.full("target"), o.source);
  BRAID_INPUT_CHECK(o.target != "text", "{}: recipe key '{}': text cannot be the translation target (MSE needs real-valued frames: image, audio or series)",
                    c.origin(), c.full("target"));
  BRAID_INPUT_CHECK(o.hidden > 0 && o.layers > 0 && o.steps > 0, "{}: '{}': hidden, layers and steps must be positive",
                    c.origin(), c.path());
  BRAID_INPUT_CHECK(o.translation_weight >= 0 && o.cycle_weight >= 0,
                    "{}: '{}': translation_weight and cycle_weight must be >= 0", c.origin(), c.path());
  BRAID_INPUT_CHECK(o.head_dropout >= 0 && o.head_dropout < 1, "{}: recipe key '{}': expected [0, 1)", c.origin(),
                    c.at("head").full("dropout"));
  return o;
}

MCTNImpl::MCTNImpl(const Config& cfg, const ModelContext& ctx) : options(MCTNOptions::from_config(cfg)) {
  const auto& o = options;
  for (const auto* m : {&o.source, &o.target}) {
    auto it = std::find(ctx.modalities.begin(), ctx.modalities.end(), *m);
    BRAID_INPUT_CHECK(it != ctx.modalities.end(), "{}: '{}': mctn {} '{}' is not among the model's modalities ({})",
                      cfg.origin(), cfg.path(), m == &o.source ? "source" : "target", *m,
                      fmt::join(ctx.modalities, ", "));
  }
  src_ctx_ = ctx.encoders.at(o.source);
  tgt_ctx_ = ctx.encoders.at(o.target);
  auto seq_cfg = cfg.at("sequences");
  seq_ = register_module("seq_" + o.source, nn::make_sequence(seq_cfg, src_ctx_));
  for (const auto& k : seq_cfg.keys())  // only the source has a front-end; the target is raw frames
    if (k != o.source) seq_cfg.mark_subtree(k);
  auto gru = [&](int64_t in) {
    return torch::nn::GRU(torch::nn::GRUOptions(in, o.hidden).num_layers(o.layers).batch_first(true));
  };
  // text has no real-valued frames: a text source's cycle regresses its (detached) token embeddings
  const int64_t fs = o.source == "text" ? seq_->out_dim() : nn::frame_dim(src_ctx_), ft = nn::frame_dim(tgt_ctx_);
  encoder_ = register_module("encoder", gru(seq_->out_dim()));
  decoder_ = register_module("decoder", gru(o.hidden));
  to_target_ = register_module("to_target", torch::nn::Linear(o.hidden, ft));
  cycle_decoder_ = register_module("cycle_decoder", gru(ft));
  to_source_ = register_module("to_source", torch::nn::Linear(o.hidden, fs));
  nn::MLPOptions ho;
  ho.in = o.hidden;
  ho.hidden = o.head_hidden;
  ho.dropout = o.head_dropout;
  ho.out = ctx.outputs;
  head_ = register_module("head", nn::MLP(ho));
}

namespace {

// Mean over steps and values of (a - b)² per row, averaged over rows where `rows` is true; 0 if none.
torch::Tensor masked_mse(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& rows) {
  auto w = rows.to(a.dtype());
  return ((a - b).pow(2).mean({1, 2}) * w).sum() / w.sum().clamp_min(1.0);
}

}  // namespace

torch::Tensor MCTNImpl::forward(const Batch& batch) {
  const int64_t T = options.steps;
  auto sit = batch.mods.find(options.source);
  TORCH_CHECK(sit != batch.mods.end(), "batch has no '", options.source, "' entry");
  auto f = seq_->forward(sit->second);
  auto x = nn::resample_nearest(f.x, f.lengths, T);          // [B, T, d]
  auto [states, h_n] = encoder_->forward(x);                 // [B, T, hidden], [layers, B, hidden]
  auto src_present = f.present;
  auto z = h_n[-1] * src_present.to(states.dtype()).unsqueeze(1);
  auto out = head_->forward(z);

  aux_ = translation_ = cycle_ = torch::Tensor();
  auto tit = batch.mods.find(options.target);
  if (is_training() && tit != batch.mods.end()) {
    auto tf = nn::raw_frames(tit->second, tgt_ctx_);
    auto sf = options.source == "text" ? nn::SequenceFeatures{f.x.detach(), f.lengths, f.present}
                                       : nn::raw_frames(sit->second, src_ctx_);
    auto tgt = nn::resample_nearest(tf.x, tf.lengths, T);    // [B, T, F_target]
    auto src = nn::resample_nearest(sf.x, sf.lengths, T);    // [B, T, F_source]
    auto translated = to_target_->forward(std::get<0>(decoder_->forward(states, h_n)));
    auto back = to_source_->forward(std::get<0>(cycle_decoder_->forward(translated)));
    translation_ = masked_mse(translated, tgt, src_present.logical_and(tf.present));
    cycle_ = masked_mse(back, src, src_present);
    aux_ = options.translation_weight * translation_ + options.cycle_weight * cycle_;
  }
  return out;
}

}  // namespace braid::models
