#include "braid/nn/lm/options.h"

#include <cmath>

#include "braid/core/error.h"

namespace braid::nn::lm {

void LMOptions::check(const std::string& origin, const std::string& path) const {
  auto key = [&](const char* k) { return path.empty() ? std::string(k) : path + "." + k; };
  BRAID_INPUT_CHECK(vocab_size > 0, "{}: recipe key '{}' must be positive, got {}", origin, key("vocab_size"),
                    vocab_size);
  BRAID_INPUT_CHECK(dim > 0, "{}: recipe key '{}' must be positive, got {}", origin, key("dim"), dim);
  BRAID_INPUT_CHECK(layers > 0, "{}: recipe key '{}' must be positive, got {}", origin, key("layers"), layers);
  BRAID_INPUT_CHECK(heads > 0 && dim % heads == 0, "{}: recipe key '{}' must be positive and divide dim {}, got {}",
                    origin, key("heads"), dim, heads);
  BRAID_INPUT_CHECK((dim / heads) % 2 == 0, "{}: recipe key '{}': head_dim = dim / heads = {} / {} must be even for RoPE",
                    origin, key("heads"), dim, heads);
  BRAID_INPUT_CHECK(kv_heads > 0 && heads % kv_heads == 0,
                    "{}: recipe key '{}' must be positive and divide heads {}, got {}", origin, key("kv_heads"), heads,
                    kv_heads);
  BRAID_INPUT_CHECK(hidden > 0, "{}: recipe key '{}' must be positive, got {}", origin, key("hidden"), hidden);
  BRAID_INPUT_CHECK(std::isfinite(rope_theta) && rope_theta > 1.0, "{}: recipe key '{}' must be > 1, got {}", origin,
                    key("rope_theta"), rope_theta);
  BRAID_INPUT_CHECK(std::isfinite(norm_eps) && norm_eps > 0.0 && norm_eps < 1.0,
                    "{}: recipe key '{}' must be in (0, 1), got {}", origin, key("norm_eps"), norm_eps);
  BRAID_INPUT_CHECK(max_seq > 0 && max_seq <= (int64_t{1} << 24), "{}: recipe key '{}' must be in [1, 2^24], got {}",
                    origin, key("max_seq"), max_seq);
  BRAID_INPUT_CHECK(rope_scaling.empty() || rope_scaling == "linear" || rope_scaling == "llama3",
                    "{}: recipe key '{}' must be \"\" (none), linear or llama3, got '{}'", origin, key("rope_scaling"),
                    rope_scaling);
  if (!rope_scaling.empty())
    BRAID_INPUT_CHECK(std::isfinite(rope_factor) && rope_factor >= 1.0, "{}: recipe key '{}' must be >= 1, got {}",
                      origin, key("rope_factor"), rope_factor);
  if (rope_scaling == "llama3") {
    BRAID_INPUT_CHECK(std::isfinite(rope_low_freq_factor) && rope_low_freq_factor > 0.0 &&
                          std::isfinite(rope_high_freq_factor) && rope_high_freq_factor > rope_low_freq_factor,
                      "{}: recipe keys '{}' and '{}' must satisfy 0 < low < high, got {} and {}", origin,
                      key("rope_low_freq_factor"), key("rope_high_freq_factor"), rope_low_freq_factor,
                      rope_high_freq_factor);
    BRAID_INPUT_CHECK(rope_original_max_seq > 0, "{}: recipe key '{}' must be positive, got {}", origin,
                      key("rope_original_max_seq"), rope_original_max_seq);
  }
}

LMOptions LMOptions::from_config(const Config& c) {
  LMOptions o;
  o.vocab_size = c.get<int64_t>("vocab_size", o.vocab_size);
  o.dim = c.get<int64_t>("dim", o.dim);
  o.layers = c.get<int64_t>("layers", o.layers);
  o.heads = c.get<int64_t>("heads", o.heads);
  o.kv_heads = c.get<int64_t>("kv_heads", o.kv_heads);
  o.hidden = c.get<int64_t>("hidden", o.hidden);
  o.rope_theta = c.get<double>("rope_theta", o.rope_theta);
  o.norm_eps = c.get<double>("norm_eps", o.norm_eps);
  o.max_seq = c.get<int64_t>("max_seq", o.max_seq);
  o.tie_embeddings = c.get<bool>("tie_embeddings", o.tie_embeddings);
  o.attention_bias = c.get<bool>("attention_bias", o.attention_bias);
  o.rope_scaling = c.get<std::string>("rope_scaling", o.rope_scaling);
  o.rope_factor = c.get<double>("rope_factor", o.rope_factor);
  o.rope_low_freq_factor = c.get<double>("rope_low_freq_factor", o.rope_low_freq_factor);
  o.rope_high_freq_factor = c.get<double>("rope_high_freq_factor", o.rope_high_freq_factor);
  o.rope_original_max_seq = c.get<int64_t>("rope_original_max_seq", o.rope_original_max_seq);
  o.check(c.origin(), c.path());
  return o;
}

}  // namespace braid::nn::lm
