// braid/run/hf_lm.h — Hugging Face Llama-family causal LMs (LlamaForCausalLM: Llama, SmolLM2, TinyLlama;
// Qwen2ForCausalLM) in and out of braid's LM backbone (nn/lm), both ways:
//   config.json  <-> nn::lm::LMOptions   (one field each; unsupported values are refused naming the key)
//   safetensors  <-> nn::lm::CausalLM    (the names are already Hugging Face's: nn/lm/causal_lm.h)
//
// config.json -> LMOptions: vocab_size, hidden_size -> dim, num_hidden_layers -> layers, num_attention_heads
// -> heads, num_key_value_heads -> kv_heads (default: heads), intermediate_size -> hidden, rope_theta
// (default 10000), rms_norm_eps -> norm_eps (default 1e-6), max_position_embeddings -> max_seq (default
// 2048), tie_word_embeddings (default false), rope_scaling (null, linear, llama3; the keys `type` or
// `rope_type`, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings). Qwen2 has q/k/v
// biases (attention_bias). Refused, naming the key: model_type other than llama/qwen2, hidden_act other
// than silu, a Llama attention_bias or mlp_bias (biases braid's blocks do not have: Llama's also puts one on
// o_proj), a head_dim other than hidden_size / num_attention_heads, Qwen2's use_sliding_window, and the
// rope_scaling types dynamic, yarn, longrope, su, ... (braid tabulates RoPE once per model).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "braid/core/safetensors.h"
#include "braid/nn/lm/causal_lm.h"
#include "braid/run/hf_checkpoint.h"

namespace braid::run {

// config.json (parsed) -> options, checked. `origin` (the file) starts every error message.
nn::lm::LMOptions hf_lm_options(const nlohmann::json& config, const std::string& origin);
// The inverse: a config.json for `o` — LlamaForCausalLM, or Qwen2ForCausalLM with attention_bias (a Qwen2
// with rope_scaling is refused: Qwen2Config has none). torch_dtype float32.
nlohmann::json hf_lm_config(const nn::lm::LMOptions& o);

// Strict load of Hugging Face names into `lm` (unknown, missing, mis-shaped: InputError naming `source` and
// the tensor). Tolerated and dropped: rotary `inv_freq` buffers of old checkpoints, and with tie_embeddings
// an lm_head.weight equal to model.embed_tokens.weight (a differing one is refused).
void load_hf_lm_tensors(nn::lm::CausalLM& lm, TensorMap tensors, const std::string& source);

// DIR (config.json + safetensors, sharded or not, F16/BF16/F32: run/hf_checkpoint.h) -> a loaded CausalLM
// (fp32, CPU, eval mode).
nn::lm::CausalLM load_hf_lm(const std::string& dir);

// `braid import hf DIR --out RUN` for model_type llama / qwen2: RUN gets a recipe with `task: generate` and
// `model: {name: lm, lm: {...}}` (models/language_model.h), the checkpoint's tokenizer.json, run.json (facts,
// with what was imported) and model.pt ("lm." + Hugging Face names). InputError when RUN is already a run, the
// folder has no tokenizer.json, or the config / tensors do not fit. Returns the facts.
nlohmann::json import_hf_lm(const HfCheckpoint& ck, const std::string& out_dir);

}  // namespace braid::run
