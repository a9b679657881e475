// braid/serve/index.h — embeddings files and the on-disk FAISS vector index.
//
// Embeddings (`braid embed`): E.safetensors holds "vectors" [N, D] float32 (L2-normalized) and "rows"
// [N] int64 (manifest rows); the sidecar E.json holds the run, modality, manifest and one entry per
// vector {row, id, path, label} so search can show paths.
//
// Index directory (`braid index build`): index.faiss (faiss::write_index) + meta.json (type, dim, count,
// modality, run, the byte size and FNV-1a hash of index.faiss, and the entries). Vectors are
// normalized, so inner product = cosine. Loading checks the hash before FAISS parses the file, so a
// missing or corrupt index is a one-line InputError, never a crash.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace braid::serve {

struct Entry {
  int64_t row = -1;             // manifest line index (0-based sample index)
  std::string id, path, label;  // sample id, file of the embedded modality ("" for text), label ("" = none)
};

struct EmbeddingSet {
  torch::Tensor vectors;  // [N, D] float32
  std::vector<Entry> entries;
  std::string run, modality, manifest, split;
};
void save_embeddings(const std::string& path, const EmbeddingSet& e);  // path.safetensors + path-less-ext .json
EmbeddingSet load_embeddings(const std::string& path);
// The sidecar of "E.safetensors" is "E.json".
std::string sidecar_path(const std::string& safetensors_path);

struct IndexSpec {
  std::string type = "flat";  // flat | ivf | hnsw
  int64_t nlist = 0;          // ivf lists (0 = about 4·sqrt(N), at most N)
  int64_t nprobe = 8;         // ivf lists visited per query
  int64_t m = 32;             // hnsw neighbours per node
  int64_t ef_search = 64;     // hnsw search breadth
};

struct Hit {
  int64_t slot = -1;  // position in the index (entries()[slot])
  float score = 0;    // cosine similarity
};

class VectorIndex {
 public:
  VectorIndex();
  ~VectorIndex();
  VectorIndex(VectorIndex&&) noexcept;
  VectorIndex& operator=(VectorIndex&&) noexcept;

  static VectorIndex build(const EmbeddingSet& e, const IndexSpec& spec);
  void save(const std::string& dir) const;
  static VectorIndex load(const std::string& dir);

  // Top-k for each row of `queries` [Q, D] (k is clipped to the index size). Thread-safe.
  std::vector<std::vector<Hit>> search(const torch::Tensor& queries, int64_t k) const;

  int64_t dim() const { return dim_; }
  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  const std::vector<Entry>& entries() const { return entries_; }
  const std::string& modality() const { return modality_; }
  const std::string& run() const { return run_; }
  const IndexSpec& spec() const { return spec_; }
  nlohmann::json describe() const;  // {type, dim, count, modality, run}

 private:
  std::unique_ptr<faiss::Index> index_;
  std::vector<Entry> entries_;
  IndexSpec spec_;
  int64_t dim_ = 0;
  std::string modality_, run_, manifest_;
};

}  // namespace braid::serve
