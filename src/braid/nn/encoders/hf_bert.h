// braid/nn/encoders/hf_bert.h — a BERT-family text encoder (Hugging Face `BertModel`) with
// sentence-transformers pooling, parameter names as in HF so that a checkpoint imported by
// `braid import hf` (docs/weights.md) loads strictly; e.g. all-MiniLM-L6-v2.
//
// Registry name `bert`. ids [B, L] (the tokenizer's [CLS] ... [SEP]; padding masked by `lengths`)
//   -> word + position + token-type-0 embeddings -> LayerNorm
//   -> num_hidden_layers post-norm blocks: LN(x + Attn(x)), LN(h + W2 act(W1 h)), act = exact erf GELU
//      ("gelu"), tanh GELU ("gelu_new" / "gelu_pytorch_tanh") or ReLU
//   -> pooling over the valid tokens: mean (masked mean) | cls (the first token) | max (masked max)
//   -> L2 normalization when `normalize` (sentence-transformers' Normalize module)
//   -> [B, hidden_size]
// Parameter names below the encoder: embeddings.{word,position,token_type}_embeddings.weight,
// embeddings.LayerNorm.{weight,bias}, encoder.layer.N.attention.self.{query,key,value}.{weight,bias},
// encoder.layer.N.attention.output.{dense,LayerNorm}.*, encoder.layer.N.intermediate.dense.*,
// encoder.layer.N.output.{dense,LayerNorm}.*. Inputs longer than max_position_embeddings are cut.
// No dropout: the tower is meant to run as imported (frozen, e.g. LiT) or fine-tuned gently.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

// Recipe keys mirror config.json (and 1_Pooling/config.json, modules.json for pooling/normalize).
struct HFBertOptions {
  int64_t vocab_size = 0;                  // 0 = the run tokenizer's vocabulary size
  int64_t hidden_size = 384;               // model and output width
  int64_t num_hidden_layers = 6;
  int64_t num_attention_heads = 12;        // hidden_size % heads == 0
  int64_t intermediate_size = 1536;        // feed-forward width
  int64_t max_position_embeddings = 512;   // learned positions (longer inputs are cut)
  int64_t type_vocab_size = 2;             // token-type rows (braid feeds type 0)
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";         // gelu (erf) | gelu_new | gelu_pytorch_tanh | relu
  std::string pooling = "mean";            // mean | cls | max
  bool normalize = false;                  // L2-normalize the pooled vector
  static HFBertOptions from_config(const Config& c);
};

class HFBertImpl : public EncoderImpl {
 public:
  HFBertImpl(HFBertOptions o, const EncoderContext& ctx);
  HFBertOptions options;
  // Last hidden states [B, T, hidden] of ids [B, T] with `lengths` [B] valid tokens (T cut to
  // max_position_embeddings).
  torch::Tensor hidden_states(const torch::Tensor& ids, const torch::Tensor& lengths);
  // Pooled (and, with `normalize`, L2-normalized) sentence vectors [B, hidden].
  torch::Tensor sentence(const torch::Tensor& ids, const torch::Tensor& lengths);

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  struct Layer {
    torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, attn_out{nullptr}, inter{nullptr}, out{nullptr};
    torch::nn::LayerNorm attn_ln{nullptr}, out_ln{nullptr};
  };
  torch::nn::Embedding word_{nullptr}, pos_{nullptr}, type_{nullptr};
  torch::nn::LayerNorm emb_ln_{nullptr};
  std::vector<Layer> layers_;
};

}  // namespace braid::nn
