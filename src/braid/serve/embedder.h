// braid/serve/embedder.h — one input (a text, an image or audio file's bytes) to a shared-space vector.
//
// `braid embed`, `braid search` and the server all preprocess through the run's data::Preprocessor
// (the code the training loader uses) and embed with the model's ModelImpl::embed, so the vectors
// of one input agree everywhere (see tests/serve_test.cpp, parity).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "braid/core/batch.h"
#include "braid/run/pipeline.h"
#include "braid/run/query.h"
#include "braid/serve/index.h"

namespace braid::serve {

// Query, query_from_file, text_prefix, preprocess_query, query_batch: run/query.h (generation uses them too).
using run::preprocess_query;
using run::Query;
using run::query_batch;
using run::query_from_file;
using run::text_prefix;

// A finished run opened for embedding: pipeline + weights, model in eval mode.
class Embedder {
 public:
  // `weights`: "model" (final), "best", or a weights file. `prepack`: on a CPU fp32 run, embed through
  // pre-packed oneDNN weights (nn/prepack.h: the same vectors within float rounding, 2-3x faster on the
  // bench CLIP towers, docs/results/engine.md); released when the Embedder is destroyed. `int8`: pack the
  // Linear layers in int8 instead (`--precision int8`, after nn::resolve_int8; CPU runs only).
  explicit Embedder(const std::string& run, const std::string& weights = "model", bool prepack = true,
                    bool int8 = false);
  ~Embedder();
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;
  // How many Linear weights were packed (0: the plain ATen path), and whether in int8.
  int64_t prepacked() const { return prepacked_; }
  bool int8() const { return int8_; }

  run::Pipeline& pipeline() { return p_; }
  const data::Preprocessor& preprocessor() const { return *p_.pre; }
  const std::string& run() const { return run_; }
  // Modalities this run's model embeds (probed once at load).
  const std::vector<std::string>& modalities() const { return embeds_; }
  bool embeds(const std::string& modality) const;

  // L2-normalized [B, D] float CPU vectors of one modality's batch, under NoGradGuard. Thread-safe
  // (one forward at a time). InputError when the model does not embed `modality`.
  torch::Tensor embed(const std::string& modality, const ModalityBatch& mb);
  // Convenience: preprocess and embed one query -> [D].
  torch::Tensor embed_query(const Query& q);

 private:
  std::string run_;
  run::Pipeline p_;
  std::vector<std::string> embeds_;
  std::mutex mu_;
  int64_t prepacked_ = 0;
  bool int8_ = false;
};

// Embeddings of one modality of a manifest split ("" = every sample) with a run's model: the loader's
// preprocessing and eval::embed_all, decoding only that modality. `text_view` overrides the recipe's
// text view ("random" embeds each sample's first view, as evaluation does). Entries carry absolute paths.
EmbeddingSet embed_manifest(Embedder& emb, const std::string& manifest_path, const std::string& split,
                            const std::string& modality, const std::string& text_view = "");

}  // namespace braid::serve
