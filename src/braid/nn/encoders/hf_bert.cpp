#include "braid/nn/encoders/hf_bert.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "braid/core/error.h"
#include "braid/core/strings.h"
#include "braid/nn/blocks.h"
#include "braid/nn/prepack.h"

// Reference: Devlin et al. 2019 (BERT); transformers' modeling_bert.py (BertEmbeddings, BertSelfAttention,
// BertSelfOutput, BertIntermediate, BertOutput) and sentence-transformers' Pooling / Normalize modules.

namespace braid::nn {

HFBertOptions HFBertOptions::from_config(const Config& c) {
  HFBertOptions o;
  o.vocab_size = c.get<int64_t>("vocab_size", o.vocab_size);
  o.hidden_size = c.get<int64_t>("hidden_size", o.hidden_size);
  o.num_hidden_layers = c.get<int64_t>("num_hidden_layers", o.num_hidden_layers);
  o.num_attention_heads = c.get<int64_t>("num_attention_heads", o.num_attention_heads);
  o.intermediate_size = c.get<int64_t>("intermediate_size", o.intermediate_size);
  o.max_position_embeddings = c.get<int64_t>("max_position_embeddings", o.max_position_embeddings);
  o.type_vocab_size = c.get<int64_t>("type_vocab_size", o.type_vocab_size);
  o.layer_norm_eps = c.get<double>("layer_norm_eps", o.layer_norm_eps);
  o.hidden_act = c.get<std::string>("hidden_act", o.hidden_act);
  o.pooling = c.get<std::string>("pooling", o.pooling);
  o.normalize = c.get<bool>("normalize", o.normalize);
  BRAID_INPUT_CHECK(o.hidden_size > 0 && o.num_attention_heads > 0 && o.hidden_size % o.num_attention_heads == 0,
                    "{}: '{}': hidden_size ({}) must be a positive multiple of num_attention_heads ({})", c.origin(),
                    c.path(), o.hidden_size, o.num_attention_heads);
  BRAID_INPUT_CHECK(o.num_hidden_layers >= 0 && o.intermediate_size > 0 && o.max_position_embeddings > 0 &&
                        o.type_vocab_size > 0 && o.vocab_size >= 0,
                    "{}: '{}': num_hidden_layers >= 0, and intermediate_size, max_position_embeddings, "
                    "type_vocab_size must be positive",
                    c.origin(), c.path());
  BRAID_INPUT_CHECK(o.layer_norm_eps > 0, "{}: '{}': layer_norm_eps must be positive", c.origin(), c.full("layer_norm_eps"));
  BRAID_INPUT_CHECK(o.hidden_act == "gelu" || o.hidden_act == "gelu_new" || o.hidden_act == "gelu_pytorch_tanh" ||
                        o.hidden_act == "relu",
                    "{}: recipe key '{}': expected gelu, gelu_new, gelu_pytorch_tanh or relu, got '{}'", c.origin(),
                    c.full("hidden_act"), o.hidden_act);
  BRAID_INPUT_CHECK(o.pooling == "mean" || o.pooling == "cls" || o.pooling == "max",
                    "{}: recipe key '{}': expected mean, cls or max, got '{}'", c.origin(), c.full("pooling"), o.pooling);
  return o;
}

HFBertImpl::HFBertImpl(HFBertOptions o, const EncoderContext& ctx) : options(o) {
  if (options.vocab_size == 0) options.vocab_size = ctx.vocab_size;
  BRAID_INPUT_CHECK(options.vocab_size > 0, "bert: the vocabulary is empty (no tokenizer and no vocab_size)");
  BRAID_INPUT_CHECK(ctx.vocab_size <= options.vocab_size,
                    "bert: the tokenizer has {} ids but the encoder's vocab_size is {} (another checkpoint's tokenizer?)",
                    ctx.vocab_size, options.vocab_size);
  const int64_t H = options.hidden_size;
  auto ln = [&](int64_t d) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(options.layer_norm_eps));
  };
  auto emb = register_module("embeddings", std::make_shared<torch::nn::Module>());
  word_ = emb->register_module("word_embeddings", torch::nn::Embedding(options.vocab_size, H));
  pos_ = emb->register_module("position_embeddings", torch::nn::Embedding(options.max_position_embeddings, H));
  type_ = emb->register_module("token_type_embeddings", torch::nn::Embedding(options.type_vocab_size, H));
  emb_ln_ = emb->register_module("LayerNorm", ln(H));
  auto enc = register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = enc->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_hidden_layers; ++i) {
    auto m = std::make_shared<torch::nn::Module>();
    Layer l;
    auto att = m->register_module("attention", std::make_shared<torch::nn::Module>());
    auto self = att->register_module("self", std::make_shared<torch::nn::Module>());
    l.q = self->register_module("query", torch::nn::Linear(H, H));
    l.k = self->register_module("key", torch::nn::Linear(H, H));
    l.v = self->register_module("value", torch::nn::Linear(H, H));
    auto ao = att->register_module("output", std::make_shared<torch::nn::Module>());
    l.attn_out = ao->register_module("dense", torch::nn::Linear(H, H));
    l.attn_ln = ao->register_module("LayerNorm", ln(H));
    auto inter = m->register_module("intermediate", std::make_shared<torch::nn::Module>());
    l.inter = inter->register_module("dense", torch::nn::Linear(H, options.intermediate_size));
    auto out = m->register_module("output", std::make_shared<torch::nn::Module>());
    l.out = out->register_module("dense", torch::nn::Linear(options.intermediate_size, H));
    l.out_ln = out->register_module("LayerNorm", ln(H));
    list->push_back(m);
    layers_.push_back(l);
  }
  // BERT's initialization (normal(0, 0.02) weights, zero biases): a from-scratch tower still trains.
  {
    torch::NoGradGuard ng;
    for (auto& p : named_parameters()) {
      const auto& n = p.key();
      if (n.find("LayerNorm") != std::string::npos) continue;
      if (ends_with(n, "bias"))
        p.value().zero_();
      else
        p.value().normal_(0.0, 0.02);
    }
  }
  out_dim_ = H;
}

torch::Tensor HFBertImpl::hidden_states(const torch::Tensor& ids0, const torch::Tensor& lengths0) {
  namespace F = torch::nn::functional;
  auto ids = ids0;
  auto lengths = lengths0;
  if (ids.size(1) > options.max_position_embeddings) {
    ids = ids.slice(1, 0, options.max_position_embeddings);
    lengths = lengths.clamp_max(options.max_position_embeddings);
  }
  const int64_t B = ids.size(0), T = ids.size(1), H = options.hidden_size, nh = options.num_attention_heads,
                hd = H / nh;
  auto positions = torch::arange(T, ids.options());
  auto x = word_->forward(ids) + pos_->forward(positions).unsqueeze(0) +
           type_->forward(torch::zeros_like(positions)).unsqueeze(0);
  x = emb_ln_->forward(x);
  // keys past each row's length are masked: [B, 1, 1, T]
  auto pad = positions.unsqueeze(0).ge(lengths.to(ids.device()).unsqueeze(1)).view({B, 1, 1, T});
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (auto& l : layers_) {
    auto heads = [&](const torch::Tensor& t) { return t.view({B, T, nh, hd}).transpose(1, 2); };  // [B, nh, T, hd]
    // linear / packed_linear: inference through pre-packed fp32 or int8 oneDNN weights when packed (nn/prepack.h),
    // the residual adds and the erf GELU as epilogues; undefined -> the module's own ops
    auto q = heads(linear(l.q, x)), k = heads(linear(l.k, x)), v = heads(linear(l.v, x));
    auto s = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, nh, T, T]
    s = s.masked_fill(pad, std::numeric_limits<float>::lowest());
    auto ctx = torch::matmul(torch::softmax(s, -1), v).transpose(1, 2).reshape({B, T, H});
    auto a = packed_linear(ctx, l.attn_out->weight, l.attn_out->bias, Epilogue::None, x);
    auto h = l.attn_ln->forward(a.defined() ? a : l.attn_out->forward(ctx) + x);
    torch::Tensor f;
    if (options.hidden_act == "gelu") f = packed_linear(h, l.inter->weight, l.inter->bias, Epilogue::Gelu);
    if (!f.defined()) {
      f = l.inter->forward(h);
      if (options.hidden_act == "gelu")
        f = torch::gelu(f);
      else if (options.hidden_act == "relu")
        f = torch::relu(f);
      else
        f = torch::gelu(f, "tanh");
    }
    auto o = packed_linear(f, l.out->weight, l.out->bias, Epilogue::None, h);
    x = l.out_ln->forward(o.defined() ? o : l.out->forward(f) + h);
  }
  return x;
}

torch::Tensor HFBertImpl::sentence(const torch::Tensor& ids, const torch::Tensor& lengths0) {
  auto x = hidden_states(ids, lengths0);  // [B, T, H]
  const int64_t T = x.size(1);
  auto lengths = lengths0.to(x.device()).clamp_max(T);
  auto valid = torch::arange(T, lengths.options()).unsqueeze(0).lt(lengths.unsqueeze(1));  // [B, T]
  torch::Tensor pooled;
  if (options.pooling == "cls") {
    pooled = x.select(1, 0);
  } else if (options.pooling == "max") {
    pooled = x.masked_fill(valid.logical_not().unsqueeze(-1), -1e9).amax(1);
  } else {
    auto m = valid.to(x.dtype()).unsqueeze(-1);
    pooled = (x * m).sum(1) / m.sum(1).clamp_min(1e-9);
  }
  if (options.normalize)
    pooled = torch::nn::functional::normalize(pooled, torch::nn::functional::NormalizeFuncOptions().dim(1));
  return pooled;
}

torch::Tensor HFBertImpl::encode(const ModalityBatch& mb) { return sentence(mb.data, mb.lengths); }

}  // namespace braid::nn
