// braid/models/early_fusion.cpp — text and image codes as one token stream (see early_fusion.h).
#include "braid/models/early_fusion.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "braid/core/error.h"

namespace braid::models {

EarlyFusionImpl::EarlyFusionImpl(const Config& cfg, const ModelContext& ctx) {
  const auto has = [&](const char* m) {
    return std::find(ctx.modalities.begin(), ctx.modalities.end(), m) != ctx.modalities.end();
  };
  BRAID_INPUT_CHECK(has("image") && has("text") && ctx.modalities.size() == 2,
                    "{}: model 'early_fusion' reads images and their text (model.modalities: [image, text])",
                    cfg.origin());
  BRAID_INPUT_CHECK(ctx.task == Task::Generate, "{}: model 'early_fusion' needs 'task: generate'", cfg.origin());
  text_vocab_ = ctx.encoders.at("text").vocab_size;
  BRAID_INPUT_CHECK(text_vocab_ > 0, "{}: model 'early_fusion' needs the run's tokenizer", cfg.origin());
  vq = register_module("vq", VQTokenizer(VQOptions::from_config(cfg.at("vq"), ctx.encoders.at("image"))));
  for (auto& p : vq->parameters()) p.requires_grad_(false);  // the tokenizer run's weights (model.init_from)
  codes_ = vq->options.codebook.codes;
  slots_ = vq->options.grid() * vq->options.grid();
  boi_ = text_vocab_ + codes_;
  eoi_ = boi_ + 1;

  auto lmc = cfg.at("lm");
  auto o = nn::lm::LMOptions::from_config(lmc);
  o.vocab_size = text_vocab_ + codes_ + 2;
  BRAID_INPUT_CHECK(o.max_seq >= slots_ + 8, "{}: recipe key '{}' is {}: the {} image-code slots and a caption need "
                    "at least {}", cfg.origin(), lmc.full("max_seq"), o.max_seq, slots_, slots_ + 8);
  first_slot_ = o.max_seq - slots_ - 1;
  lm = register_module("lm", nn::lm::CausalLM(o));
  slot_pos = register_parameter("slot_pos", torch::randn({slots_, o.dim}) * 0.02);

  cond_drop_ = cfg.get<double>("cond_drop", cond_drop_);
  caption_ = cfg.get<double>("caption", caption_);
  BRAID_INPUT_CHECK(cond_drop_ >= 0 && cond_drop_ < 1, "{}: recipe key '{}': expected a probability in [0, 1)",
                    cfg.origin(), cfg.full("cond_drop"));
  BRAID_INPUT_CHECK(caption_ >= 0 && caption_ <= 1, "{}: recipe key '{}': expected a share in [0, 1]", cfg.origin(),
                    cfg.full("caption"));
  bos_ = ctx.chat.bos;
  eos_ = ctx.chat.eos;
  pad_ = ctx.chat.pad;
  cfg.mark_subtree("init_from");  // read by the trainer
  train(is_training());
}

void EarlyFusionImpl::train(bool on) {
  ModelImpl::train(on);
  vq->eval();
}

torch::Tensor EarlyFusionImpl::forward(const Batch&) {
  input_error("model 'early_fusion' draws and names images: `braid generate RUN --text \"...\" --out x.png` or "
              "`braid generate RUN --image F`");
}

ModelImpl::Capabilities EarlyFusionImpl::capabilities() const {
  Capabilities c;
  c.codes = codes_;
  c.draws = true;
  c.generates = true;
  c.scores = true;
  return c;
}

torch::Tensor EarlyFusionImpl::codes(const std::string& modality, const ModalityBatch& mb) {
  BRAID_INPUT_CHECK(modality == "image", "early_fusion: no codes for '{}' (its image tokenizer reads images)",
                    modality);
  torch::NoGradGuard ng;
  return vq->codes(mb.data);
}

torch::Tensor EarlyFusionImpl::decode_codes(const std::string& modality, const torch::Tensor& ids) {
  BRAID_INPUT_CHECK(modality == "image", "early_fusion: no decoder for '{}'", modality);
  torch::NoGradGuard ng;
  return vq->to_pixels(vq->decode_codes(ids));
}

// ---- sequences ----

EarlyFusionImpl::Seqs EarlyFusionImpl::draw_sequences(const torch::Tensor& text, const torch::Tensor& lengths,
                                                      const torch::Tensor& codes, const std::vector<bool>& drop) const {
  const int64_t B = codes.size(0), G = slots_, cap = first_slot_ - 2;
  auto tx = text.to(torch::kCPU, torch::kLong).contiguous();
  auto ln = lengths.to(torch::kCPU, torch::kLong).contiguous();
  auto cd = codes.to(torch::kCPU, torch::kLong).contiguous();
  std::vector<int64_t> L(B);
  int64_t maxL = 0;
  for (int64_t b = 0; b < B; ++b) {
    L[b] = drop[b] ? 0 : std::min({ln[b].item<int64_t>(), tx.size(1), cap});
    maxL = std::max(maxL, L[b]);
  }
  const int64_t T = maxL + 1 + G;  // <bos> text <boi> c_1 .. c_{G-1}
  auto ids = torch::full({B, T}, pad_, torch::kLong), pos = torch::zeros({B, T}, torch::kLong);
  auto slot = torch::zeros({B, T}, torch::kLong), at = torch::zeros({B, G}, torch::kLong);
  auto ia = ids.accessor<int64_t, 2>(), pa = pos.accessor<int64_t, 2>(), sa = slot.accessor<int64_t, 2>();
  auto aa = at.accessor<int64_t, 2>();
  auto ta = tx.accessor<int64_t, 2>();
  auto ca = cd.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t t = 0;
    ia[b][t] = bos_, pa[b][t] = 0, ++t;
    for (int64_t i = 0; i < L[b]; ++i) ia[b][t] = ta[b][i], pa[b][t] = 1 + i, ++t;
    ia[b][t] = boi_, pa[b][t] = first_slot_ - 1, ++t;
    for (int64_t i = 0; i + 1 < G; ++i) ia[b][t] = text_vocab_ + ca[b][i], pa[b][t] = first_slot_ + i, sa[b][t] = i + 1, ++t;
    for (int64_t i = 0; i < G; ++i) aa[b][i] = L[b] + 1 + i;  // <boi> predicts c_1, c_i predicts c_{i+1}
    // right padding: position 0 (never attended to by the real tokens: causal)
  }
  return {ids, pos, slot, at, cd, torch::ones({B, G}, torch::kBool)};
}

EarlyFusionImpl::Seqs EarlyFusionImpl::caption_sequences(const torch::Tensor& text, const torch::Tensor& lengths,
                                                         const torch::Tensor& codes) const {
  const int64_t B = codes.size(0), G = slots_, cap = lm->options.max_seq - G - 3;
  auto tx = text.to(torch::kCPU, torch::kLong).contiguous();
  auto ln = lengths.to(torch::kCPU, torch::kLong).contiguous();
  auto cd = codes.to(torch::kCPU, torch::kLong).contiguous();
  std::vector<int64_t> L(B);
  int64_t maxL = 0;
  for (int64_t b = 0; b < B; ++b) maxL = std::max(maxL, L[b] = std::min({ln[b].item<int64_t>(), tx.size(1), cap}));
  const int64_t T = G + 3 + maxL;  // <bos> <boi> c_1..c_G <eoi> t_1..t_L  (predicting t_1..t_L, <eos>)
  auto ids = torch::full({B, T}, pad_, torch::kLong);
  auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
  auto slot = torch::zeros({B, T}, torch::kLong), at = torch::zeros({B, maxL + 1}, torch::kLong);
  auto target = torch::full({B, maxL + 1}, pad_, torch::kLong);
  auto valid = torch::zeros({B, maxL + 1}, torch::kBool);
  auto ia = ids.accessor<int64_t, 2>(), sa = slot.accessor<int64_t, 2>(), aa = at.accessor<int64_t, 2>();
  auto ga = target.accessor<int64_t, 2>();
  auto va = valid.accessor<bool, 2>();
  auto ta = tx.accessor<int64_t, 2>();
  auto ca = cd.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    ia[b][0] = bos_, ia[b][1] = boi_;
    for (int64_t i = 0; i < G; ++i) ia[b][2 + i] = text_vocab_ + ca[b][i], sa[b][2 + i] = i + 1;
    ia[b][G + 2] = eoi_;
    for (int64_t i = 0; i < L[b]; ++i) ia[b][G + 3 + i] = ta[b][i];
    for (int64_t j = 0; j <= L[b]; ++j) {
      aa[b][j] = G + 2 + j;
      ga[b][j] = j < L[b] ? ta[b][j] : eos_;
      va[b][j] = true;
    }
  }
  return {ids, pos, slot, at, target, valid};
}

torch::Tensor EarlyFusionImpl::embed_ids(const torch::Tensor& ids, const torch::Tensor& slot) {
  const auto dev = slot_pos.device();
  auto e = lm->model->embed_tokens->forward(ids.to(dev));
  auto table = torch::cat({torch::zeros({1, slot_pos.size(1)}, slot_pos.options()), slot_pos});
  return e + table.index_select(0, slot.to(dev).reshape(-1)).view(e.sizes());
}

torch::Tensor EarlyFusionImpl::hidden_of(const Seqs& s) {
  nn::lm::LMInputs in;
  in.position_ids = s.pos.to(slot_pos.device());
  return lm->hidden(embed_ids(s.ids, s.slot), in);
}

torch::Tensor EarlyFusionImpl::range_logits(const torch::Tensor& h, int64_t start, int64_t n) {
  const auto& w = lm->lm_head ? lm->lm_head->weight : lm->model->embed_tokens->weight;
  return torch::linear(h, w.narrow(0, start, n));
}

torch::Tensor EarlyFusionImpl::nll(const Seqs& s, const torch::Tensor& h, int64_t start, int64_t n) {
  const auto dev = h.device();
  auto at = s.at.to(dev);
  auto hg = h.gather(1, at.unsqueeze(2).expand({at.size(0), at.size(1), h.size(2)}));
  auto logits = range_logits(hg, start, n).flatten(0, 1);
  auto target = s.target.to(dev).reshape(-1);
  auto valid = s.valid.to(dev).reshape(-1);
  auto ce = torch::nn::functional::cross_entropy(logits, target.clamp(0, n - 1),
                                                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return (ce * valid.to(ce.dtype())).sum() / valid.sum().clamp_min(1);
}

EarlyFusionImpl::Text EarlyFusionImpl::batch_text(const Batch& batch, const torch::Tensor& rows) const {
  const auto& t = batch.mods.at("text");
  auto r = rows.to(t.data.device());
  return {t.data.index_select(0, r), t.lengths.to(t.data.device()).index_select(0, r)};
}

namespace {
// rows that have both an image and a text
torch::Tensor paired_rows(const Batch& batch) {
  auto im = batch.mods.find("image"), tx = batch.mods.find("text");
  BRAID_INPUT_CHECK(im != batch.mods.end() && tx != batch.mods.end() && im->second.data.defined() &&
                        tx->second.data.defined(),
                    "early_fusion: the batch needs images and their text");
  auto keep = im->second.present.to(torch::kCPU, torch::kBool) & tx->second.present.to(torch::kCPU, torch::kBool);
  return keep.nonzero().reshape(-1);
}
}  // namespace

torch::Tensor EarlyFusionImpl::objective(const Batch& batch) {
  auto rows = paired_rows(batch);
  const int64_t B = rows.numel();
  BRAID_INPUT_CHECK(B > 0, "early_fusion: no row of the batch has both an image and text");
  BRAID_INPUT_CHECK(vq->codebook->live_codes() > 0,
                    "early_fusion: the image tokenizer is untrained: set model.init_from to a vq_image run (e.g. "
                    "--set model.init_from=runs/vq) whose model.vq equals this recipe's");
  const auto& im = batch.mods.at("image");
  torch::Tensor codes;
  {
    torch::NoGradGuard ng;
    codes = vq->codes(im.data.index_select(0, rows.to(im.data.device())));
  }
  auto text = batch_text(batch, rows);
  std::vector<bool> drop(B, false);
  std::vector<int64_t> cap_rows;
  auto u = torch::rand({B, 2}, torch::kDouble);
  auto ua = u.accessor<double, 2>();
  for (int64_t b = 0; b < B; ++b) {
    if (is_training()) drop[b] = ua[b][0] < cond_drop_;
    if (caption_ > 0 && (ua[b][1] < caption_ || !is_training())) cap_rows.push_back(b);
  }
  auto ds = draw_sequences(text.ids, text.lengths, codes, drop);
  auto code_loss = nll(ds, hidden_of(ds), text_vocab_, codes_);
  auto loss = code_loss;
  terms_ = {{"draw", code_loss.item<double>()}};
  if (!cap_rows.empty()) {
    auto sel = torch::tensor(cap_rows, torch::kLong);
    auto cs = caption_sequences(text.ids.index_select(0, sel.to(text.ids.device())),
                                text.lengths.index_select(0, sel.to(text.lengths.device())),
                                codes.index_select(0, sel.to(codes.device())));
    auto text_loss = nll(cs, hidden_of(cs), 0, text_vocab_);
    loss = loss + text_loss;
    terms_["caption"] = text_loss.item<double>();
  }
  return loss;
}

std::map<std::string, double> EarlyFusionImpl::score_batch(const Batch& batch) {
  torch::NoGradGuard ng;
  const bool was = is_training();
  train(false);
  objective(batch);  // eval mode: no caption dropped, every row captioned
  train(was);
  std::map<std::string, double> m{{"code_nll", terms_.at("draw")}, {"score", -terms_.at("draw")}};
  if (terms_.count("caption")) m["text_nll"] = terms_.at("caption");
  return m;
}

torch::Tensor EarlyFusionImpl::teacher_code_logits(const torch::Tensor& text, const torch::Tensor& lengths,
                                                   const torch::Tensor& codes) {
  auto s = draw_sequences(text, lengths, codes, std::vector<bool>(codes.size(0), false));
  auto h = hidden_of(s);
  auto at = s.at.to(h.device());
  auto hg = h.gather(1, at.unsqueeze(2).expand({at.size(0), at.size(1), h.size(2)}));
  return range_logits(hg, text_vocab_, codes_);
}

// ---- drawing ----

torch::Tensor EarlyFusionImpl::run_draw(const DrawRequest& r, const torch::Tensor* forced, torch::Tensor* logits_out,
                                        bool force_uncond) {
  BRAID_INPUT_CHECK(!r.prompts.empty(), "draw: no prompt");
  BRAID_INPUT_CHECK(r.per_prompt >= 1 && r.per_prompt <= 1024, "draw: per_prompt must be in [1, 1024], got {}",
                    r.per_prompt);
  BRAID_INPUT_CHECK(std::isfinite(r.guidance) && r.guidance >= 0, "draw: guidance must be finite and >= 0, got {}",
                    r.guidance);
  BRAID_INPUT_CHECK(r.sample.temperature >= 0, "draw: temperature must be >= 0");
  const int64_t P = static_cast<int64_t>(r.prompts.size()), R = P * r.per_prompt, G = slots_;
  BRAID_INPUT_CHECK(R <= 4096, "draw: {} images in one request; at most 4096", R);
  const int64_t cap = first_slot_ - 2;
  int64_t maxL = 0;
  for (const auto& p : r.prompts) {
    for (auto id : p)
      BRAID_INPUT_CHECK(id >= 0 && id < text_vocab_, "draw: token id {} is outside the text vocabulary [0, {})", id,
                        text_vocab_);
    maxL = std::max<int64_t>(maxL, std::min<int64_t>(static_cast<int64_t>(p.size()), cap));
  }
  torch::NoGradGuard ng;
  const bool guided = r.guidance > 0 || force_uncond;
  const int64_t rows = guided ? 2 * R : R, Tp = maxL + 2;
  // prefix: [pad.. <bos> text <boi>] (conditional rows) then [pad.. <bos> <boi>] (unconditional), left padded
  auto ids = torch::full({rows, Tp}, pad_, torch::kLong), pos = torch::zeros({rows, Tp}, torch::kLong);
  auto mask = torch::zeros({rows, Tp}, torch::kLong);
  auto ia = ids.accessor<int64_t, 2>(), pa = pos.accessor<int64_t, 2>(), ma = mask.accessor<int64_t, 2>();
  for (int64_t row = 0; row < rows; ++row) {
    const bool cond = row < R;
    const auto& p = r.prompts[static_cast<size_t>((cond ? row : row - R) / r.per_prompt)];
    const int64_t L = cond ? std::min<int64_t>(static_cast<int64_t>(p.size()), cap) : 0;
    int64_t t = Tp - (L + 2);
    ia[row][t] = bos_, pa[row][t] = 0, ma[row][t] = 1, ++t;
    for (int64_t i = 0; i < L; ++i) ia[row][t] = p[static_cast<size_t>(i)], pa[row][t] = 1 + i, ma[row][t] = 1, ++t;
    ia[row][t] = boi_, pa[row][t] = first_slot_ - 1, ma[row][t] = 1;
  }
  const auto dev = slot_pos.device();
  auto full = embed_ids(ids, torch::zeros_like(ids));
  pos = pos.to(dev);
  mask = mask.to(dev);
  auto cache = lm->new_cache();
  nn::lm::LMInputs in;
  in.position_ids = pos;
  in.attention_mask = mask;
  if (r.use_cache) in.cache = &cache;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(r.seed);
  auto h = lm->hidden(full, in);
  std::vector<torch::Tensor> out, logit_steps;
  for (int64_t i = 0; i < G; ++i) {
    auto last = range_logits(h.select(1, h.size(1) - 1), text_vocab_, codes_);  // [rows, K]
    if (guided) {
      auto c = last.narrow(0, 0, R), u = last.narrow(0, R, R);
      last = c + r.guidance * (c - u);
    }
    torch::Tensor tok;
    if (forced) {
      logit_steps.push_back(last.to(torch::kCPU));
      tok = forced->select(1, i).to(dev, torch::kLong);
    } else {
      tok = nn::lm::next_token(last, {}, r.sample, gen);
    }
    out.push_back(tok.to(torch::kCPU));
    if (i + 1 == G) break;
    auto step_tok = guided ? torch::cat({tok, tok}) : tok;
    auto step = embed_ids((step_tok + text_vocab_).unsqueeze(1), torch::full({rows, 1}, i + 1, torch::kLong));
    auto step_pos = torch::full({rows, 1}, first_slot_ + i, torch::TensorOptions().dtype(torch::kLong).device(dev));
    mask = torch::cat({mask, torch::ones({rows, 1}, mask.options())}, 1);
    in.attention_mask = mask;
    if (r.use_cache) {
      in.position_ids = step_pos;
      h = lm->hidden(step, in);
    } else {
      full = torch::cat({full, step}, 1);
      pos = torch::cat({pos, step_pos}, 1);
      in.position_ids = pos;
      h = lm->hidden(full, in);
    }
  }
  if (logits_out) *logits_out = torch::stack(logit_steps, 1);
  return torch::stack(out, 1);
}

torch::Tensor EarlyFusionImpl::draw_codes(const DrawRequest& r) { return run_draw(r, nullptr, nullptr, false); }

torch::Tensor EarlyFusionImpl::code_logits(const DrawRequest& r, const torch::Tensor& codes, bool force_uncond) {
  const int64_t R = static_cast<int64_t>(r.prompts.size()) * r.per_prompt;
  BRAID_INPUT_CHECK(codes.dim() == 2 && codes.size(0) == R && codes.size(1) == slots_,
                    "code_logits: expected codes [{}, {}]", R, slots_);
  torch::Tensor logits;
  run_draw(r, &codes, &logits, force_uncond);
  return logits;
}

torch::Tensor EarlyFusionImpl::draw(const DrawRequest& r) {
  torch::NoGradGuard ng;
  auto codes = draw_codes(r);
  return vq->to_pixels(vq->decode_codes(codes.to(slot_pos.device()))).to(torch::kCPU);
}

// ---- captioning ----

std::pair<torch::Tensor, torch::Tensor> EarlyFusionImpl::caption_prefix(const torch::Tensor& images) {
  auto codes = vq->codes(images).to(torch::kCPU);
  const int64_t B = codes.size(0), G = slots_;
  auto ids = torch::empty({B, G + 3}, torch::kLong), slot = torch::zeros({B, G + 3}, torch::kLong);
  ids.select(1, 0).fill_(bos_);
  ids.select(1, 1).fill_(boi_);
  ids.narrow(1, 2, G).copy_(codes + text_vocab_);
  ids.select(1, G + 2).fill_(eoi_);
  slot.narrow(1, 2, G).copy_(torch::arange(1, G + 1, torch::kLong).unsqueeze(0).expand({B, G}));
  return {ids, slot};
}

nn::lm::Generated EarlyFusionImpl::generate(const Batch& batch, const GenerateRequest& request) {
  BRAID_INPUT_CHECK(request.modality == "image" && request.prompt_ids.empty(),
                    "early_fusion names images: give an image and no prompt");
  auto it = batch.mods.find("image");
  BRAID_INPUT_CHECK(it != batch.mods.end() && it->second.data.defined() &&
                        it->second.present.to(torch::kBool).all().item<bool>(),
                    "generate: every row needs an image");
  torch::NoGradGuard ng;
  auto [ids, slot] = caption_prefix(it->second.data);
  auto o = request.options;
  o.max_tokens = std::min(o.max_tokens, lm->options.max_seq - ids.size(1));
  const int64_t tv = text_vocab_;
  auto user_allowed = o.allowed;
  o.allowed = [tv, user_allowed](const std::vector<std::vector<int64_t>>& made, int64_t v) {
    auto ok = torch::zeros({static_cast<int64_t>(made.size()), v}, torch::kBool);
    ok.narrow(1, 0, tv).fill_(true);  // text tokens only
    return user_allowed ? user_allowed(made, v).to(torch::kBool).logical_and(ok) : ok;
  };
  return nn::lm::generate_from_embeds(lm, embed_ids(ids, slot), ids.to(slot_pos.device()), o);
}

torch::Tensor EarlyFusionImpl::prompt_logits(const Batch& batch, const GenerateRequest& request) {
  auto it = batch.mods.find("image");
  BRAID_INPUT_CHECK(request.modality == "image" && it != batch.mods.end() && it->second.data.defined(),
                    "early_fusion: prompt logits need an image");
  torch::NoGradGuard ng;
  auto [ids, slot] = caption_prefix(it->second.data);
  return lm->forward_embeds(embed_ids(ids, slot));
}

}  // namespace braid::models
