// braid/run/query.h — one input given by a user (a text, or an image / audio file's bytes) through a run's
// preprocessing: what `braid embed`, `braid generate` and the server share, so that one input gives the same
// tensors everywhere.
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "braid/core/batch.h"
#include "braid/data/preprocess.h"

namespace braid::run {

// One query: `payload` is the text itself (modality "text") or the bytes of an image / audio file.
// `name` labels it in errors ("upload.png", a path, "text query").
struct Query {
  std::string modality;
  std::string payload;
  std::string name;
};

// Reads a query file (image or audio) into a Query; missing / unreadable / too large files are InputErrors.
Query query_from_file(const std::string& modality, const std::string& path, size_t max_bytes = 64u << 20);

// The part of a text query that can reach the model: at most max(4096, 64 x max_tokens) bytes (a
// sub-word piece is at most 16 characters), cut on a UTF-8 boundary, so that a huge query is never
// tokenized whole.
std::string text_prefix(const std::string& text, int64_t max_tokens);

// Preprocess one query with the run's preprocessor: [3,H,W] image, [n_mels,T] log-mel or [L] token ids.
// Bad input (empty, not an image, truncated WAV, unknown modality) is an InputError naming `q.name`.
torch::Tensor preprocess_query(const data::Preprocessor& pre, const Query& q);

// Stack preprocessed inputs of one modality into a batch (padding as the loader does).
Batch query_batch(const std::string& modality, const std::vector<torch::Tensor>& inputs);

}  // namespace braid::run
