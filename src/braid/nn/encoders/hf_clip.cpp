#include "braid/nn/encoders/hf_clip.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include <fmt/ranges.h>

#include "braid/core/error.h"

// Reference: transformers 4.40 models/clip/modeling_clip.py and models/siglip/modeling_siglip.py.

namespace braid::nn {

namespace {

torch::Tensor activation(const std::string& act, const torch::Tensor& x) {
  if (act == "quick_gelu") return x * torch::sigmoid(1.702 * x);
  if (act == "gelu") return torch::gelu(x);
  return torch::gelu(x, "tanh");  // gelu_pytorch_tanh (from_config admits nothing else)
}

// A child module that only groups parameters under a name (HF `embeddings`, `encoder`, `head`, ...).
std::shared_ptr<torch::nn::Module> group(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

torch::nn::LayerNorm layer_norm(int64_t d, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(eps));
}

torch::nn::Linear linear(int64_t in, int64_t out, bool bias = true) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// softmax(q kᵀ / √d + mask) v over heads: q [B, Tq, D], k/v [B, Tk, D] -> [B, Tq, D].
torch::Tensor multihead(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads,
                        const torch::Tensor& mask) {
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), D = q.size(2), d = D / heads;
  auto split = [&](const torch::Tensor& t, int64_t T) { return t.view({B, T, heads, d}).transpose(1, 2); };
  auto s = torch::matmul(split(q, Tq) * (1.0 / std::sqrt(double(d))), split(k, Tk).transpose(-2, -1));  // [B, H, Tq, Tk]
  if (mask.defined()) s = s + mask;
  auto o = torch::matmul(torch::softmax(s, -1), split(v, Tk));  // [B, H, Tq, d]
  return o.transpose(1, 2).reshape({B, Tq, D});
}

}  // namespace

HFClipOptions HFClipOptions::from_config(const Config& c) {
  HFClipOptions o;
  o.variant = c.get<std::string>("variant", o.variant);
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  o.intermediate = c.get<int64_t>("intermediate", o.intermediate);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.heads = c.get<int64_t>("heads", o.heads);
  o.act = c.get<std::string>("act", o.act);
  o.eps = c.get<double>("eps", o.eps);
  o.projection_dim = c.get<int64_t>("projection_dim", o.projection_dim);
  o.image_size = c.get<int64_t>("image_size", o.image_size);
  o.patch = c.get<int64_t>("patch", o.patch);
  o.vocab = c.get<int64_t>("vocab", o.vocab);
  o.max_positions = c.get<int64_t>("max_positions", o.max_positions);
  o.pool = c.get<std::string>("pool", o.pool);
  o.eos_id = c.get<int64_t>("eos_id", o.eos_id);
  o.pad_id = c.get<int64_t>("pad_id", o.pad_id);
  BRAID_INPUT_CHECK(o.variant == "clip" || o.variant == "siglip", "{}: recipe key '{}': expected clip or siglip, got '{}'",
                    c.origin(), c.full("variant"), o.variant);
  BRAID_INPUT_CHECK(o.act == "quick_gelu" || o.act == "gelu" || o.act == "gelu_pytorch_tanh",
                    "{}: recipe key '{}': unsupported activation '{}' (expected quick_gelu, gelu or gelu_pytorch_tanh)",
                    c.origin(), c.full("act"), o.act);
  BRAID_INPUT_CHECK(o.pool == "eos" || o.pool == "argmax", "{}: recipe key '{}': expected eos or argmax, got '{}'",
                    c.origin(), c.full("pool"), o.pool);
  BRAID_INPUT_CHECK(o.hidden > 0 && o.heads > 0 && o.hidden % o.heads == 0,
                    "{}: '{}': hidden ({}) must be a positive multiple of heads ({})", c.origin(), c.path(), o.hidden,
                    o.heads);
  BRAID_INPUT_CHECK(o.intermediate > 0 && o.layers >= 1 && o.projection_dim >= 0 && o.eps > 0,
                    "{}: '{}': intermediate and layers must be positive, projection_dim >= 0, eps > 0", c.origin(),
                    c.path());
  BRAID_INPUT_CHECK(o.patch > 0 && o.image_size >= o.patch && o.vocab > 0 && o.max_positions > 0,
                    "{}: '{}': patch, image_size (>= patch), vocab and max_positions must be positive", c.origin(),
                    c.path());
  return o;
}

HFClipLayerImpl::HFClipLayerImpl(const HFClipOptions& o) : o_(o) {
  const int64_t D = o.hidden;
  ln1_ = register_module("layer_norm1", layer_norm(D, o.eps));
  auto attn = group(*this, "self_attn");
  q_ = attn->register_module("q_proj", linear(D, D));
  k_ = attn->register_module("k_proj", linear(D, D));
  v_ = attn->register_module("v_proj", linear(D, D));
  out_ = attn->register_module("out_proj", linear(D, D));
  ln2_ = register_module("layer_norm2", layer_norm(D, o.eps));
  auto mlp = group(*this, "mlp");
  fc1_ = mlp->register_module("fc1", linear(D, o.intermediate));
  fc2_ = mlp->register_module("fc2", linear(o.intermediate, D));
}

torch::Tensor HFClipLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto h = ln1_->forward(x);
  auto a = multihead(q_->forward(h), k_->forward(h), v_->forward(h), o_.heads, mask);
  auto y = x + out_->forward(a);
  return y + fc2_->forward(activation(o_.act, fc1_->forward(ln2_->forward(y))));
}

// ---- vision ----

HFClipVisionImpl::HFClipVisionImpl(HFClipOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  const auto& p = options;
  BRAID_INPUT_CHECK(ctx.image_size == p.image_size,
                    "hf_clip_vision: the model was trained on {}-px images, data.image.size is {} (set it to {})",
                    p.image_size, ctx.image_size, p.image_size);
  const bool clip = p.variant == "clip";
  const int64_t side = p.image_size / p.patch, D = p.hidden;
  n_patches_ = side * side;
  auto emb = group(*this, "embeddings");
  patch_ = emb->register_module(
      "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, D, p.patch).stride(p.patch).bias(!clip)));
  if (clip) cls_ = emb->register_parameter("class_embedding", torch::randn({D}) * 0.02);
  pos_ = emb->register_module("position_embedding", torch::nn::Embedding(n_patches_ + (clip ? 1 : 0), D));
  if (clip) pre_ = register_module("pre_layrnorm", layer_norm(D, p.eps));
  auto enc = group(*this, "encoder");
  layers_ = enc->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < p.layers; ++i) layers_->push_back(HFClipLayer(p));
  post_ = register_module("post_layernorm", layer_norm(D, p.eps));
  if (!clip) {
    auto head = group(*this, "head");
    probe_ = head->register_parameter("probe", torch::randn({1, 1, D}));
    auto attn = group(*head, "attention");  // torch.nn.MultiheadAttention's names
    in_w_ = attn->register_parameter("in_proj_weight", torch::randn({3 * D, D}) * (1.0 / std::sqrt(double(D))));
    in_b_ = attn->register_parameter("in_proj_bias", torch::zeros({3 * D}));
    head_out_ = attn->register_module("out_proj", linear(D, D));
    head_ln_ = head->register_module("layernorm", layer_norm(D, p.eps));
    auto mlp = group(*head, "mlp");
    head_fc1_ = mlp->register_module("fc1", linear(D, p.intermediate));
    head_fc2_ = mlp->register_module("fc2", linear(p.intermediate, D));
  }
  if (p.projection_dim > 0) proj_ = register_module("projection", linear(D, p.projection_dim, false));
  out_dim_ = p.projection_dim > 0 ? p.projection_dim : D;
}

torch::Tensor HFClipVisionImpl::pooled(const torch::Tensor& images) {
  namespace F = torch::nn::functional;
  BRAID_INPUT_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == options.image_size &&
                        images.size(3) == options.image_size,
                    "hf_clip_vision: expected images [B, 3, {}, {}], got {}", options.image_size, options.image_size,
                    fmt::join(images.sizes(), "x"));
  auto x = patch_->forward(images).flatten(2).transpose(1, 2);  // [B, N, D]
  const int64_t B = x.size(0), D = options.hidden;
  if (cls_.defined()) x = torch::cat({cls_.view({1, 1, D}).expand({B, 1, D}), x}, 1);  // [B, 1 + N, D]
  x = x + pos_->weight.unsqueeze(0);
  if (pre_) x = pre_->forward(x);
  for (auto& l : *layers_) x = l->as<HFClipLayer>()->forward(x);
  if (options.variant == "clip") return post_->forward(x.select(1, 0));  // [B, D]
  x = post_->forward(x);
  // MAP head: one probe query attends over every token (torch.nn.MultiheadAttention), then LN + MLP residual.
  auto w = in_w_.chunk(3, 0);
  auto b = in_b_.chunk(3, 0);
  auto q = F::linear(probe_.expand({B, 1, D}), w[0], b[0]);
  auto h = head_out_->forward(multihead(q, F::linear(x, w[1], b[1]), F::linear(x, w[2], b[2]), options.heads, {}));
  h = h + head_fc2_->forward(activation(options.act, head_fc1_->forward(head_ln_->forward(h))));
  return h.select(1, 0);  // [B, D]
}

torch::Tensor HFClipVisionImpl::encode(const ModalityBatch& mb) {
  auto h = pooled(mb.data);
  return proj_ ? proj_->forward(h) : h;
}

// ---- text ----

HFClipTextImpl::HFClipTextImpl(HFClipOptions o, const EncoderContext& ctx) : options(std::move(o)) {
  const auto& p = options;
  BRAID_INPUT_CHECK(ctx.vocab_size <= p.vocab,
                    "hf_clip_text: the tokenizer has {} ids, the model's token embedding only {} (vocab)",
                    ctx.vocab_size, p.vocab);
  const int64_t D = p.hidden;
  auto emb = group(*this, "embeddings");
  tok_ = emb->register_module("token_embedding", torch::nn::Embedding(p.vocab, D));
  pos_ = emb->register_module("position_embedding", torch::nn::Embedding(p.max_positions, D));
  auto enc = group(*this, "encoder");
  layers_ = enc->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < p.layers; ++i) layers_->push_back(HFClipLayer(p));
  final_ = register_module("final_layer_norm", layer_norm(D, p.eps));
  if (p.variant == "siglip") head_ = register_module("head", linear(D, D));
  if (p.projection_dim > 0) proj_ = register_module("projection", linear(D, p.projection_dim, false));
  out_dim_ = p.projection_dim > 0 ? p.projection_dim : D;
}

torch::Tensor HFClipTextImpl::pooled(const torch::Tensor& ids_in, const torch::Tensor& lengths) {
  const auto& p = options;
  BRAID_INPUT_CHECK(ids_in.dim() == 2 && ids_in.size(1) >= 1, "hf_clip_text: expected token ids [B, L], got {}",
                    fmt::join(ids_in.sizes(), "x"));
  auto ids = ids_in.to(torch::kLong);
  const int64_t B = ids.size(0);
  if (B > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    BRAID_INPUT_CHECK(lo >= 0 && hi < p.vocab, "hf_clip_text: token ids {}..{} outside the vocabulary 0..{}", lo, hi,
                      p.vocab - 1);
  }
  if (ids.size(1) > p.max_positions) ids = ids.slice(1, 0, p.max_positions);
  const bool siglip = p.variant == "siglip";
  if (siglip) {
    // SigLIP was trained on ids padded to the full context with pad_id (no attention mask) and pools the last one.
    auto full = torch::full({B, p.max_positions}, p.pad_id, ids.options());
    auto len = lengths.defined() ? lengths.to(torch::kLong).clamp_max(ids.size(1))
                                 : torch::full({B}, ids.size(1), ids.options());
    auto keep = torch::arange(ids.size(1), ids.options()).unsqueeze(0) < len.unsqueeze(1);  // [B, L]
    full.slice(1, 0, ids.size(1)).copy_(torch::where(keep, ids, torch::full_like(ids, p.pad_id)));
    ids = full;
  }
  const int64_t T = ids.size(1);
  auto x = tok_->forward(ids) + pos_->weight.slice(0, 0, T).unsqueeze(0);  // [B, T, D]
  torch::Tensor mask;
  if (!siglip)  // causal: position i sees 0..i
    mask = torch::full({T, T}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);
  for (auto& l : *layers_) x = l->as<HFClipLayer>()->forward(x, mask);
  x = final_->forward(x);
  if (siglip) return head_->forward(x.select(1, T - 1));
  // CLIP: the EOS state. argmax: the highest id (original CLIP / OpenCLIP; HF when eos_token_id == 2);
  // eos: the first position holding eos_id (0 when none, as HF's argmax over a zero row).
  auto at = p.pool == "argmax" ? ids.argmax(1) : ids.eq(p.eos_id).to(torch::kInt).argmax(1);
  return x.index({torch::arange(B, at.options()), at});  // [B, D]
}

torch::Tensor HFClipTextImpl::encode(const ModalityBatch& mb) {
  auto h = pooled(mb.data, mb.lengths);
  return proj_ ? proj_->forward(h) : h;
}

}  // namespace braid::nn
