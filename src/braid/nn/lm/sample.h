// braid/nn/lm/sample.h — next-token selection and the generation loop.
//
// The logit transforms are pure functions of [B, V] logits (any float dtype and device); they return a
// new tensor. Removed tokens get -inf. Sampling draws from a CPU torch::Generator seeded once per
// generate() call, so a seed gives the same tokens on every run and device.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "braid/nn/lm/causal_lm.h"

namespace braid::nn::lm {

// Hugging Face's RepetitionPenaltyLogitsProcessor: for every token id in `previous` [B, N] (each row's
// prompt and generated tokens), a positive logit is divided by `penalty`, a negative one multiplied.
// penalty 1: unchanged. penalty must be > 0.
torch::Tensor repetition_penalty(const torch::Tensor& logits, const torch::Tensor& previous, double penalty);
// logits / temperature (temperature > 0).
torch::Tensor apply_temperature(const torch::Tensor& logits, double temperature);
// Keeps the k highest logits of each row (ties with the k-th kept too); k <= 0 or k >= V: unchanged.
torch::Tensor top_k_filter(const torch::Tensor& logits, int64_t k);
// Nucleus: keeps the smallest set of highest-probability tokens whose probabilities sum to >= p (at least
// one token); p >= 1: unchanged. p must be in (0, 1].
torch::Tensor top_p_filter(const torch::Tensor& logits, double p);
// argmax per row: [B, V] -> [B] int64 (the lowest id among equal maxima).
torch::Tensor greedy(const torch::Tensor& logits);

struct SampleOptions {
  double temperature = 0.0;         // 0: greedy (top_k/top_p ignored); > 0: sample from softmax(logits / t)
  int64_t top_k = 0;                // keep the k most likely tokens (0: all)
  double top_p = 1.0;               // nucleus mass (1: all)
  double repetition_penalty = 1.0;  // > 1 discourages tokens already in the sequence (1: off)
};

// One token per row: [B, V] logits (+ the row's tokens so far [B, N] for the penalty; may be undefined)
// -> [B] int64. Applies penalty, then greedy, or temperature, top-k, top-p and a draw with `gen` (CPU).
torch::Tensor next_token(const torch::Tensor& logits, const torch::Tensor& previous, const SampleOptions& o,
                         at::Generator& gen);

struct GenerateOptions {
  int64_t max_tokens = 32;            // new tokens per row at most
  std::vector<int64_t> stop_tokens{};  // a row ends after emitting one of these (it is kept in the output)
  uint64_t seed = 0;                  // seeds the sampling generator (unused by greedy)
  bool use_cache = true;              // KV cache (one new token per step) or a full forward per step
  int64_t pad_id = 0;                 // fills a row's output after it stopped
  SampleOptions sample{};
  // Called after every step with that step's tokens [B] (CPU int64, pad_id for finished rows); returning
  // false ends generation after this step (a client went away). Unset: runs to the end.
  std::function<bool(int64_t step, const torch::Tensor& tokens)> on_step{};
  // Constrained decoding: for each row's new tokens so far, a [B, V] bool mask of the tokens allowed next
  // (applied before sampling; a row with nothing allowed is left unconstrained). Unset: every token.
  std::function<torch::Tensor(const std::vector<std::vector<int64_t>>& generated, int64_t vocab)> allowed{};
};

struct Generated {
  torch::Tensor tokens;          // [B, steps] int64 new tokens (steps <= max_tokens), pad_id after a stop
  std::vector<int64_t> lengths;  // per row: new tokens up to and including its stop token
};

// Continues each row of `prompt` [B, T] (equal lengths, no padding, T >= 1) under no-grad; stops when every
// row has emitted a stop token or max_tokens are made. InputError when T + max_tokens > max_seq or an option
// is out of range.
Generated generate(CausalLM& model, const torch::Tensor& prompt, const GenerateOptions& o);
// The same from input embeddings [B, T, dim] (modality tokens in front of text): `prompt_ids` [B, T] are the
// ids the repetition penalty sees (pad_id where a position holds no token). Cached and uncached decoding
// give the same tokens.
Generated generate_from_embeds(CausalLM& model, const torch::Tensor& embeds, const torch::Tensor& prompt_ids,
                               const GenerateOptions& o);

}  // namespace braid::nn::lm
