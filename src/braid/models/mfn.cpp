#include "braid/models/mfn.h"

#include <torch/torch.h>

namespace braid::models {

MFNOptions MFNOptions::from_config(const Config& c) {
  MFNOptions o;
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  o.memory = c.get<int64_t>("memory", o.memory);
  o.attn_hidden = c.get<int64_t>("attn_hidden", o.attn_hidden);
  o.steps = c.get<int64_t>("steps", o.steps);
  o.gate_memory = c.get<bool>("gate_memory", o.gate_memory);
  o.dropout = c.get<double>("dropout", o.dropout);
  auto h = c.at("head");
  o.head_hidden = h.get<std::vector<int64_t>>("hidden", o.head_hidden);
  o.head_dropout = h.get<double>("dropout", o.head_dropout);
  BRAID_INPUT_CHECK(o.hidden > 0 && o.memory > 0 && o.attn_hidden > 0 && o.steps > 0,
                    "{}: '{}': hidden, memory, attn_hidden and steps must be positive", c.origin(), c.path());
  BRAID_INPUT_CHECK(o.dropout >= 0 && o.dropout < 1 && o.head_dropout >= 0 && o.head_dropout < 1,
                    "{}: '{}': dropout must be in [0, 1)", c.origin(), c.path());
  return o;
}

MFNImpl::MFNImpl(const Config& cfg, const ModelContext& ctx)
    : options(MFNOptions::from_config(cfg)), modalities_(ctx.modalities) {
  const auto& o = options;
  const int64_t M = static_cast<int64_t>(modalities_.size());
  auto seq_cfg = cfg.at("sequences");
  for (const auto& m : modalities_) {
    auto s = nn::make_sequence(seq_cfg, ctx.encoders.at(m));
    seqs_.push_back(register_module("seq_" + m, s));
    cells_.push_back(register_module("lstm_" + m, torch::nn::LSTMCell(s->out_dim(), o.hidden)));
  }
  for (const auto& k : seq_cfg.keys())
    if (std::find(modalities_.begin(), modalities_.end(), k) == modalities_.end()) seq_cfg.mark_subtree(k);
  const int64_t cells = 2 * M * o.hidden;  // ĉ = [c_{t-1}; c_t]
  attn_ = register_module("attn", nn::DeltaMemoryAttention(nn::DeltaMemoryAttentionOptions{cells, o.attn_hidden, o.dropout}));
  memory_ = register_module(
      "memory", nn::GatedMemory(nn::GatedMemoryOptions{cells, o.memory, o.attn_hidden, o.gate_memory, o.dropout}));
  nn::MLPOptions ho;
  ho.in = M * o.hidden + o.memory;
  ho.hidden = o.head_hidden;
  ho.dropout = o.head_dropout;
  ho.out = ctx.outputs;
  head_ = register_module("head", nn::MLP(ho));
}

torch::Tensor MFNImpl::encode(const Batch& batch) {
  const size_t M = modalities_.size();
  const int64_t T = options.steps;
  std::vector<torch::Tensor> xs(M), pres(M), h(M), c(M);
  for (size_t i = 0; i < M; ++i) {
    auto it = batch.mods.find(modalities_[i]);
    TORCH_CHECK(it != batch.mods.end(), "batch has no '", modalities_[i], "' entry");
    auto f = seqs_[i]->forward(it->second);
    xs[i] = nn::resample_nearest(f.x, f.lengths, T);  // [B, T, d_m]
    pres[i] = f.present.to(f.x.dtype()).unsqueeze(1);  // [B, 1]
    h[i] = torch::zeros({f.x.size(0), options.hidden}, f.x.options());
    c[i] = h[i];
  }
  auto u = torch::zeros({xs[0].size(0), options.memory}, xs[0].options());
  for (int64_t t = 0; t < T; ++t) {
    std::vector<torch::Tensor> prev_c = c;
    for (size_t i = 0; i < M; ++i) {
      auto [hn, cn] = cells_[i]->forward(xs[i].select(1, t), std::make_tuple(h[i], c[i]));
      h[i] = hn * pres[i];  // absent rows keep a zero state
      c[i] = cn * pres[i];
    }
    auto c_hat = torch::cat({torch::cat(prev_c, 1), torch::cat(c, 1)}, 1);  // [B, 2·M·hidden]
    u = memory_->forward(attn_->forward(c_hat), u);
  }
  h.push_back(u);
  return torch::cat(h, 1);
}

torch::Tensor MFNImpl::forward(const Batch& batch) { return head_->forward(encode(batch)); }

}  // namespace braid::models
