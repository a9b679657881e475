#include "braid/models/mult.h"

#include <torch/torch.h>

#include <cmath>

namespace braid::models {

MulTOptions MulTOptions::from_config(const Config& c) {
  MulTOptions o;
  o.dim = c.get<int64_t>("dim", o.dim);
  o.heads = c.get<int64_t>("heads", o.heads);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.self_layers = c.get<int64_t>("self_layers", o.self_layers);
  o.proj_kernel = c.get<int64_t>("proj_kernel", o.proj_kernel);
  o.dropout = c.get<double>("dropout", o.dropout);
  auto h = c.at("head");
  o.head_hidden = h.get<std::vector<int64_t>>("hidden", o.head_hidden);
  o.head_dropout = h.get<double>("dropout", o.head_dropout);
  BRAID_INPUT_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0,
                    "{}: '{}': dim ({}) must be a positive multiple of heads ({})", c.origin(), c.path(), o.dim, o.heads);
  BRAID_INPUT_CHECK(o.layers >= 1 && o.self_layers >= 0, "{}: '{}': needs layers >= 1 and self_layers >= 0", c.origin(),
                    c.path());
  BRAID_INPUT_CHECK(o.proj_kernel > 0 && o.proj_kernel % 2 == 1, "{}: recipe key '{}': expected a positive odd kernel",
                    c.origin(), c.full("proj_kernel"));
  BRAID_INPUT_CHECK(o.dropout >= 0 && o.dropout < 1 && o.head_dropout >= 0 && o.head_dropout < 1,
                    "{}: '{}': dropout must be in [0, 1)", c.origin(), c.path());
  return o;
}

MulTImpl::MulTImpl(const Config& cfg, const ModelContext& ctx)
    : options(MulTOptions::from_config(cfg)), modalities_(ctx.modalities) {
  const auto& o = options;
  const int64_t M = static_cast<int64_t>(modalities_.size());
  auto seq_cfg = cfg.at("sequences");
  for (const auto& m : modalities_) {
    auto s = nn::make_sequence(seq_cfg, ctx.encoders.at(m));
    seqs_.push_back(register_module("seq_" + m, s));
    projs_.push_back(register_module(
        "proj_" + m, torch::nn::Conv1d(torch::nn::Conv1dOptions(s->out_dim(), o.dim, o.proj_kernel)
                                           .padding(o.proj_kernel / 2).bias(false))));
  }
  for (const auto& k : seq_cfg.keys())  // front-ends of modalities this run does not read
    if (std::find(modalities_.begin(), modalities_.end(), k) == modalities_.end()) seq_cfg.mark_subtree(k);

  const int64_t width = M > 1 ? (M - 1) * o.dim : o.dim;
  BRAID_INPUT_CHECK(width % o.heads == 0, "{}: '{}': the concatenated width {} is not a multiple of heads {}",
                    cfg.origin(), cfg.path(), width, o.heads);
  nn::CrossModalStackOptions so;
  so.layer = nn::CrossModalLayerOptions{o.dim, o.heads, 4, o.dropout};
  so.layers = o.layers;
  cross_.resize(M);
  for (int64_t a = 0; a < M; ++a) {
    for (int64_t b = 0; b < M; ++b) {
      if (a == b) continue;
      cross_[a].push_back(
          register_module("cross_" + modalities_[a] + "_from_" + modalities_[b], nn::CrossModalStack(so)));
    }
    auto blocks = register_module("self_" + modalities_[a], torch::nn::ModuleList());
    for (int64_t i = 0; i < o.self_layers; ++i)
      blocks->push_back(nn::TransformerBlock(nn::TransformerBlockOptions{width, o.heads, 4, o.dropout}));
    selfs_.push_back(blocks);
    norms_.push_back(register_module("ln_" + modalities_[a], torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}))));
  }
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
  nn::MLPOptions ho;
  ho.in = M * width;
  ho.hidden = o.head_hidden;
  ho.dropout = o.head_dropout;
  ho.out = ctx.outputs;
  head_ = register_module("head", nn::MLP(ho));
}

std::vector<torch::Tensor> MulTImpl::encode(const Batch& batch) {
  const size_t M = modalities_.size();
  std::vector<torch::Tensor> xs(M), pads(M), lens(M), pres(M);
  for (size_t i = 0; i < M; ++i) {
    auto it = batch.mods.find(modalities_[i]);
    TORCH_CHECK(it != batch.mods.end(), "batch has no '", modalities_[i], "' entry");
    auto f = seqs_[i]->forward(it->second);
    const int64_t T = f.x.size(1);
    auto x = projs_[i]->forward(f.x.transpose(1, 2)).transpose(1, 2);  // [B, T, dim]
    x = x * std::sqrt(static_cast<double>(options.dim)) + nn::sinusoidal_positions(T, options.dim, x.options()).unsqueeze(0);
    xs[i] = drop_->forward(x);
    lens[i] = f.lengths;
    pads[i] = nn::padding_mask(f.lengths, T);  // [B, T] true = padding (all true for absent rows)
    pres[i] = f.present;
  }
  std::vector<torch::Tensor> outs;
  for (size_t a = 0; a < M; ++a) {
    torch::Tensor h;
    if (M == 1) {
      h = xs[a];
    } else {
      std::vector<torch::Tensor> parts;
      size_t j = 0;
      for (size_t b = 0; b < M; ++b)
        if (b != a) parts.push_back(cross_[a][j++]->forward(xs[a], xs[b], pads[b]));
      h = torch::cat(parts, -1);  // [B, T_a, (M-1)·dim]
    }
    auto self_pad = nn::nonempty_padding(pads[a]);  // absent targets: finite garbage, zeroed below
    for (auto& blk : *selfs_[a]) h = blk->as<nn::TransformerBlock>()->forward(h, self_pad);
    h = norms_[a]->forward(h);
    outs.push_back(nn::last_step(h, lens[a]) * pres[a].to(h.dtype()).unsqueeze(1));
  }
  return outs;
}

torch::Tensor MulTImpl::forward(const Batch& batch) { return head_->forward(torch::cat(encode(batch), 1)); }

}  // namespace braid::models
