// apps/braid/tools/lm_bench.h — speed of the Llama-family language model (src/braid/nn/lm): training
// tokens/s and generation tokens/s (batch 1 and 8, with and without the KV cache) of a randomly initialised
// CausalLM, for comparison with a PyTorch peer of the same model (bench/lm_speed.sh, bench/peer/lm_peer.py).
// A tool of the CLI, above the library layers.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace braid::tools {

struct LMBenchOptions {
  int64_t dim = 256, layers = 4, heads = 8, kv_heads = 4, hidden = 704, vocab = 1000;
  bool tie = false;          // tied embeddings (no lm_head)
  int64_t seq = 32;          // training sequence length
  int64_t batch = 32;        // training batch
  int64_t prompt = 16;       // generation prompt length
  int64_t new_tokens = 32;   // tokens generated per row (no stop tokens: always this many)
  int64_t steps = 5;         // timed training steps per repeat (generation: `steps` generate() calls per repeat)
  int64_t warmup = 2;        // untimed training steps / generate() calls before the timed repeats
  int64_t repeats = 5;       // the median of the repeats is reported
  int threads = 0;           // intra-op threads (0 = all cores)
  uint64_t seed = 0;         // weights, batch and prompts
  std::string cases = "all"; // "all" or a comma list of train, b1_cache, b1_nocache, b8_cache, b8_nocache (profiling),
                             // plus forward (inference logits at B = 1 and batch; only when named)
};

// Builds CausalLM(o) with Hugging Face's initialisation under `seed`, times training steps (forward,
// next-token cross-entropy, backward, AdamW) on one random [batch, seq] batch, then greedy generation
// (nn::lm::generate, no stop tokens) of `new_tokens` tokens from random [B, prompt] prompts at B = 1 and 8,
// with and without the KV cache. Returns {"train_tokens_per_s", "gen_tokens_per_s_b1_cache",
// "gen_tokens_per_s_b1_nocache", "gen_tokens_per_s_b8_cache", "gen_tokens_per_s_b8_nocache" (new tokens of all
// rows per second; medians), "runs" (per repeat), "parameters", "threads", "config", "adamw", "loss"}.
nlohmann::json measure_lm(const LMBenchOptions& o);

}  // namespace braid::tools
