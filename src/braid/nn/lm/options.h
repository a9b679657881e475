// braid/nn/lm/options.h — the shape of a Llama-family decoder-only language model.
//
// The fields mirror a Hugging Face LlamaConfig / Qwen2Config (vocab_size, hidden_size -> dim,
// num_hidden_layers -> layers, num_attention_heads -> heads, num_key_value_heads -> kv_heads,
// intermediate_size -> hidden, rope_theta, rms_norm_eps -> norm_eps, max_position_embeddings -> max_seq,
// tie_word_embeddings, attention_bias), so a checkpoint's config maps onto it one field each.
#pragma once

#include <cstdint>
#include <string>

#include "braid/core/config.h"

namespace braid::nn::lm {

struct LMOptions {
  int64_t vocab_size = 32000;   // token embedding rows and logits width
  int64_t dim = 512;            // model width (hidden_size)
  int64_t layers = 8;           // decoder blocks
  int64_t heads = 8;            // query heads; dim % heads == 0 and head_dim = dim / heads is even (RoPE)
  int64_t kv_heads = 8;         // key/value heads (grouped-query attention); heads % kv_heads == 0
  int64_t hidden = 1536;        // SwiGLU width (intermediate_size)
  double rope_theta = 10000.0;  // RoPE base: inv_freq[i] = rope_theta^(-2i / head_dim)
  double norm_eps = 1e-5;       // RMSNorm epsilon (Llama 1e-5, Llama-2/Qwen2 1e-6)
  int64_t max_seq = 2048;       // longest sequence (prompt + generated); size of the cos/sin cache
  bool tie_embeddings = false;  // logits use embed_tokens.weight; no lm_head.weight
  bool attention_bias = false;  // bias on q/k/v projections (Qwen2); o_proj never has one
  // RoPE scaling (Hugging Face rope_scaling): "" none; "linear" (positions / rope_factor, i.e. every
  // inv_freq / rope_factor); "llama3" (Llama 3.1: long wavelengths / rope_factor, short ones kept, a smooth
  // blend between, set by the three fields below). nn/lm/layers.h rope_inv_freq computes it.
  std::string rope_scaling;
  double rope_factor = 1.0;              // linear, llama3: factor (>= 1)
  double rope_low_freq_factor = 1.0;     // llama3: low_freq_factor
  double rope_high_freq_factor = 4.0;    // llama3: high_freq_factor (> low_freq_factor)
  int64_t rope_original_max_seq = 8192;  // llama3: original_max_position_embeddings

  int64_t head_dim() const { return dim / heads; }

  // InputError unless the options are consistent. `origin` and `path` name the recipe file and the
  // map these options came from ("recipes/x.yaml", "model.lm"); each message names the full key.
  void check(const std::string& origin = "LMOptions", const std::string& path = "") const;
  // Reads every field above (same keys) from `c`, defaults for absent ones, then check().
  static LMOptions from_config(const Config& c);
};

}  // namespace braid::nn::lm
