#include "braid/models/ave_localizer.h"

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "braid/core/error.h"
#include "braid/models/unicode.h"

namespace braid::models {

AveLocalizerImpl::AveLocalizerImpl(const Config& cfg, const ModelContext& ctx) : modalities_(ctx.modalities) {
  segments_ = cfg.get<int64_t>("segments", segments_);
  classes_ = cfg.get<int64_t>("classes", classes_);
  grid_ = cfg.get<int64_t>("grid", grid_);
  dim_ = cfg.get<int64_t>("dim", dim_);
  hidden_ = cfg.get<int64_t>("hidden", hidden_);
  const double dropout = cfg.get<double>("dropout", 0.1);
  const std::string temporal = cfg.get<std::string>("temporal", "gru");
  BRAID_INPUT_CHECK(segments_ > 0 && classes_ >= 2 && grid_ > 0 && grid_ * grid_ >= segments_ && dim_ > 0 && hidden_ > 0,
                    "{}: model '{}' needs segments > 0, classes >= 2, grid x grid >= segments and positive dim, hidden "
                    "(got segments {}, classes {}, grid {}, dim {}, hidden {})",
                    cfg.origin(), cfg.path(), segments_, classes_, grid_, dim_, hidden_);
  BRAID_INPUT_CHECK(dropout >= 0 && dropout < 1, "{}: recipe key '{}' must be in [0, 1)", cfg.origin(), cfg.full("dropout"));
  BRAID_INPUT_CHECK(temporal == "gru" || temporal == "none", "{}: recipe key '{}' is '{}'; expected gru or none",
                    cfg.origin(), cfg.full("temporal"), temporal);
  BRAID_INPUT_CHECK(ctx.task == Task::Regress && ctx.outputs == segments_,
                    "{}: model ave_localizer needs task: regress with a target of {} per-segment class ids per sample "
                    "(braid data build ave); got {} target values", cfg.origin(), segments_, ctx.outputs);
  gru_on_ = temporal == "gru";
  const int64_t fused = cfg.has("unicode") ? build_code_input(cfg, ctx) : build_encoders(cfg, ctx);
  fuse_ = register_module("fuse", torch::nn::Linear(fused, hidden_));
  drop_ = register_module("drop", torch::nn::Dropout(dropout));
  int64_t head_in = hidden_;
  if (gru_on_) {
    gru_ = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(hidden_, hidden_).batch_first(true).bidirectional(true)));
    head_in = 2 * hidden_;
  }
  head_ = register_module("head", torch::nn::Linear(head_in, classes_));
  train(is_training());  // the frozen Uni-Code modules start (and stay) in evaluation mode
}

int64_t AveLocalizerImpl::build_encoders(const Config& cfg, const ModelContext& ctx) {
  auto enc_cfg = cfg.at("encoders");
  for (const auto& m : modalities_) {
    BRAID_INPUT_CHECK(m == "image" || m == "audio", "{}: model ave_localizer reads image and audio, not '{}'", cfg.origin(), m);
    BRAID_INPUT_CHECK(enc_cfg.has(m), "{}: recipe key '{}' is missing: modality '{}' needs an encoder", cfg.origin(),
                      enc_cfg.full(m), m);
    nn::EncoderContext ec = ctx.encoders.at(m);
    if (m == "image") {
      BRAID_INPUT_CHECK(ec.image_size % grid_ == 0, "{}: data.image.size {} is not a multiple of model grid {}",
                        cfg.origin(), ec.image_size, grid_);
      ec.image_size /= grid_;  // the encoder sees one frame
      image_enc_ = register_module("enc_image", nn::encoder_registry().make(enc_cfg.at(m), ec));
      image_proj_ = register_module("proj_image", torch::nn::Linear(image_enc_->out_dim(), dim_));
    } else {
      audio_enc_ = register_module("enc_audio", nn::encoder_registry().make(enc_cfg.at(m), ec));
      audio_proj_ = register_module("proj_audio", torch::nn::Linear(audio_enc_->out_dim(), dim_));
    }
  }
  for (const auto& k : enc_cfg.keys())  // encoders of modalities this run does not read (ablations of one recipe)
    if (std::find(modalities_.begin(), modalities_.end(), k) == modalities_.end()) enc_cfg.mark_subtree(k);
  return (image_enc_ && audio_enc_) ? 3 * dim_ : dim_;
}

int64_t AveLocalizerImpl::build_code_input(const Config& cfg, const ModelContext& ctx) {
  code_modality_ = cfg.get<std::string>("code_modality", "image");
  BRAID_INPUT_CHECK(code_modality_ == "image" || code_modality_ == "audio",
                    "{}: recipe key '{}' is '{}'; expected image or audio", cfg.origin(), cfg.full("code_modality"),
                    code_modality_);
  const auto reads = [&](const char* m) { return std::find(modalities_.begin(), modalities_.end(), m) != modalities_.end(); };
  BRAID_INPUT_CHECK(reads("image") && reads("audio") && modalities_.size() == 2,
                    "{}: model ave_localizer with Uni-Code input (model.unicode) needs model.modalities [image, audio] "
                    "(the codes of both are kept; model.code_modality picks the one read), got [{}]", cfg.origin(),
                    fmt::join(modalities_, ", "));
  auto ucfg = cfg.at("unicode");
  // the unicode run's model section may be repeated as it is: its name, modalities and text front-end are not used
  BRAID_INPUT_CHECK(ucfg.get<std::string>("name", "unicode") == "unicode", "{}: recipe key '{}' must be unicode",
                    cfg.origin(), ucfg.full("name"));
  ucfg.mark_subtree("modalities");
  auto seqs = ucfg.at("sequences");
  for (const auto& k : seqs.keys())
    if (k != "image" && k != "audio") seqs.mark_subtree(k);
  ModelContext uc;
  uc.modalities = {"image", "audio"};
  uc.task = Task::Align;
  for (const auto& m : uc.modalities) uc.encoders[m] = ctx.encoders.at(m);
  auto& img = uc.encoders["image"];
  BRAID_INPUT_CHECK(img.image_size % grid_ == 0, "{}: data.image.size {} is not a multiple of model grid {}",
                    cfg.origin(), img.image_size, grid_);
  img.image_size /= grid_;  // the Uni-Code image path sees one frame
  unicode_ = std::make_shared<UnicodeImpl>(ucfg, uc);
  // The modules the codes need, under their names in a unicode run (so init_from loads them); frozen.
  for (const auto& c : unicode_->named_children()) {
    const std::string& n = c.key();
    if (n == "codebook" || n.rfind("seq_", 0) == 0 || n.rfind("semantic_", 0) == 0) {
      register_module(n, c.value());
      for (auto& p : c.value()->parameters()) p.requires_grad_(false);
    }
  }
  code_input_ = cfg.get<std::string>("code_input", "codes");
  BRAID_INPUT_CHECK(code_input_ == "codes" || code_input_ == "semantic",
                    "{}: recipe key '{}' is '{}'; expected codes or semantic", cfg.origin(), cfg.full("code_input"),
                    code_input_);
  cfg.mark_subtree("init_from");  // read by the trainer (train/trainer.cpp)
  code_proj_ = register_module("code_proj", torch::nn::Linear(unicode_->options.dim, dim_));
  return dim_;
}

void AveLocalizerImpl::train(bool on) {
  ModelImpl::train(on);
  if (unicode_) unicode_->eval();  // every Uni-Code module, registered here or not
}

ModalityBatch AveLocalizerImpl::frame_cells(const ModalityBatch& mb) const {
  TORCH_CHECK(mb.data.dim() == 4, "ave_localizer: image batch ", mb.data.sizes(), " is not [B, 3, H, W]");
  const auto B = mb.data.size(0), H = mb.data.size(2), W = mb.data.size(3);
  TORCH_CHECK(H == W && H % grid_ == 0, "ave_localizer: image batch ", mb.data.sizes(), " is not a square grid of ",
              grid_, " x ", grid_, " frames");
  const int64_t s = H / grid_;
  // [B, 3, g*s, g*s] -> [B, 3, g, s, g, s] -> [B, g, g, 3, s, s] -> [B, g*g, 3, s, s]; the first T cells in row-major order
  auto cells = mb.data.view({B, 3, grid_, s, grid_, s}).permute({0, 2, 4, 1, 3, 5}).reshape({B, grid_ * grid_, 3, s, s});
  ModalityBatch f;
  f.data = cells.slice(1, 0, segments_).reshape({B * segments_, 3, s, s});
  f.lengths = torch::ones({B * segments_}, torch::dtype(torch::kLong).device(mb.data.device()));
  f.present = mb.present.repeat_interleave(segments_);
  return f;
}

ModalityBatch AveLocalizerImpl::audio_seconds(const ModalityBatch& mb) const {
  TORCH_CHECK(mb.data.dim() == 3, "ave_localizer: audio batch ", mb.data.sizes(), " is not [B, n_mels, frames]");
  const auto B = mb.data.size(0), M = mb.data.size(1), F = mb.data.size(2) / segments_;
  TORCH_CHECK(F > 0, "ave_localizer: audio batch ", mb.data.sizes(), " has fewer frames than ",
              segments_, " segments");
  // [B, M, T*F] -> [B, M, T, F] -> [B, T, M, F] -> [B*T, M, F]
  ModalityBatch a;
  a.data = mb.data.slice(2, 0, segments_ * F).view({B, M, segments_, F}).permute({0, 2, 1, 3}).reshape({B * segments_, M, F});
  auto start = torch::arange(segments_, mb.lengths.options()).mul(F).unsqueeze(0);  // [1, T]
  a.lengths = (mb.lengths.unsqueeze(1) - start).clamp(1, F).reshape({B * segments_});
  a.present = mb.present.repeat_interleave(segments_);
  return a;
}

torch::Tensor AveLocalizerImpl::frames_of(const ModalityBatch& mb) {
  return image_proj_->forward(image_enc_->forward(frame_cells(mb))).view({mb.data.size(0), segments_, dim_});
}

torch::Tensor AveLocalizerImpl::sounds_of(const ModalityBatch& mb) {
  return audio_proj_->forward(audio_enc_->forward(audio_seconds(mb))).view({mb.data.size(0), segments_, dim_});
}

torch::Tensor AveLocalizerImpl::segment_codes(const std::string& modality, const ModalityBatch& mb) {
  BRAID_INPUT_CHECK(unicode_, "ave_localizer: segment codes need Uni-Code input (model.unicode)");
  BRAID_INPUT_CHECK(modality == "image" || modality == "audio", "ave_localizer: no Uni-Code path for '{}'", modality);
  torch::NoGradGuard frozen;
  auto s = unicode_->encode(modality, modality == "image" ? frame_cells(mb) : audio_seconds(mb)).s;  // [B T, steps, D]
  if (code_input_ == "semantic") return s.mean(1).view({mb.data.size(0), segments_, s.size(2)});
  auto q = unicode_->codebook()->quantize(s).codes;  // the code vectors e_k*
  return q.mean(1).view({mb.data.size(0), segments_, s.size(2)});
}

torch::Tensor AveLocalizerImpl::forward(const Batch& batch) {
  torch::Tensor v, a, z;
  if (unicode_) {
    BRAID_INPUT_CHECK(!is_training() || unicode_->live_codes() > 0,
                      "ave_localizer: the Uni-Code model (model.unicode) is untrained, its codebook has no live code: "
                      "set model.init_from to the unicode run whose model section model.unicode repeats (e.g. --set "
                      "model.init_from=runs/ave-unicode)");
    auto it = batch.mods.find(code_modality_);
    BRAID_INPUT_CHECK(it != batch.mods.end(), "ave_localizer: the batch has no '{}' data (model.code_modality)",
                      code_modality_);
    z = code_proj_->forward(segment_codes(code_modality_, it->second));  // [B, T, dim]
  } else {
    if (image_enc_) v = frames_of(batch.mods.at("image"));
    if (audio_enc_) a = sounds_of(batch.mods.at("audio"));
    if (v.defined() && a.defined()) z = torch::cat({v, a, v * a}, 2);
    else z = v.defined() ? v : a;
  }
  auto h = drop_->forward(torch::relu(fuse_->forward(z)));  // [B, T, hidden]
  if (gru_on_) h = drop_->forward(std::get<0>(gru_->forward(h)));  // [B, T, 2 hidden]
  return head_->forward(h).reshape({h.size(0), segments_ * classes_});
}

std::map<std::string, double> AveLocalizerImpl::score_batch(const Batch& batch) {
  BRAID_INPUT_CHECK(batch.targets.defined() && batch.targets.dim() == 2 && batch.targets.size(1) == segments_,
                    "ave_localizer: scoring needs the {} per-segment ids of each sample (manifest 'target')", segments_);
  auto pred = forward(batch).view({-1, segments_, classes_}).argmax(2).to(torch::kCPU);
  auto truth = batch.targets.to(torch::kCPU).round().to(torch::kLong);
  auto ok = pred.eq(truth).to(torch::kDouble);
  auto ev = truth.gt(0).to(torch::kDouble), bg = 1.0 - ev;
  const double B = static_cast<double>(truth.size(0));
  const double acc = ok.mean().item<double>();
  // per row: accuracy over its event (background) segments; 0 (1) for a row without any
  auto per_row = [&](const torch::Tensor& mask, double none) {
    auto n = mask.sum(1), hit = (ok * mask).sum(1);
    return torch::where(n > 0, hit / n.clamp_min(1), torch::full_like(n, none)).sum().item<double>() / B;
  };
  return {{"score", acc}, {"segment_accuracy", acc}, {"event_segment_accuracy", per_row(ev, 0.0)},
          {"background_accuracy", per_row(bg, 1.0)}};
}

}  // namespace braid::models
