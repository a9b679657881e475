// braid/data/loader.h — batches from a manifest split, decoded by worker threads.
//
// The order of samples is a pure function of (seed, epoch): a run resumed in the middle of
// an epoch sees exactly the batches it would have seen. Workers decode ahead (bounded by
// `prefetch`); batches come out in order. A worker error is rethrown to the caller with its
// message; a batch not ready within `stall_seconds` is reported, never waited on forever.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "braid/data/preprocess.h"

namespace braid::data {

// Class names <-> ids, taken from the train split (sorted; numerically when all are integers).
class ClassMap {
 public:
  static ClassMap from_manifest(const Manifest& m, const std::string& split = "train");
  static ClassMap load(const std::string& json_path);
  void save(const std::string& json_path) const;
  int64_t size() const { return static_cast<int64_t>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  // Id of `label`; InputError naming `where` when the label is unknown.
  int64_t id(const std::string& label, const std::string& where) const;

 private:
  std::vector<std::string> names_;
  std::map<std::string, int64_t> ids_;
};

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  int workers = 2;           // decoding threads (1..kMaxWorkers)
  int prefetch = 4;          // batches decoded ahead (1..kMaxPrefetch)
  bool cache = true;         // keep decoded samples in memory after the first epoch
  // Bytes of decoded samples all loaders of the process may keep together (cache = true); once
  // reached, further samples are decoded every epoch instead of kept (no eviction: what is cached
  // stays, so the set is the same every epoch). -1 = a quarter of physical memory.
  int64_t cache_max_bytes = -1;
  static constexpr int kMaxWorkers = 256, kMaxPrefetch = 1024;
  double stall_seconds = 300;
  // data.text.view: random — each training sample reads one of its text views, drawn anew every
  // epoch (deterministic in seed, epoch and sample); otherwise the sample's first view.
  bool random_text_view = false;
  // Batches for a CUDA device: collate into page-locked (pinned) memory in the worker, so that
  // Batch::to copies them asynchronously.
  bool pin_memory = false;
};

enum class Targets { None, Labels, Regression };

class Loader {
 public:
  Loader(std::shared_ptr<const Manifest> manifest, std::vector<int64_t> indices,
         std::shared_ptr<const Preprocessor> pre, LoaderOptions opt, Targets targets,
         std::shared_ptr<const ClassMap> classes = nullptr);
  ~Loader();

  // Data-parallel sharding: this loader delivers only rank `rank` of `world`'s part of each
  // epoch. The epoch's order (the same on every rank: it depends on seed and epoch only) is
  // padded by repeating its first samples to a multiple of `world` (when `pad`; otherwise
  // the shards may differ by one sample), and rank r takes positions r, r+world, r+2*world...
  // So with per-rank batch B, global batch g = order positions [g*B*world, (g+1)*B*world)
  // and rank r's batch g holds exactly that range's positions congruent to r mod world:
  // the union of the ranks' batch g is the single-process batch g of size B*world.
  void set_shard(int rank, int world, bool pad = true);
  int64_t batches_per_epoch() const;
  int64_t samples() const { return static_cast<int64_t>(indices_.size()); }  // whole split
  int64_t shard_samples() const;                                              // this rank's, per epoch
  const Manifest& manifest() const { return *manifest_; }
  // Sample order of `epoch` for this shard (indices into the manifest).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Start delivering `epoch` from batch `start_batch` (resume in the middle of an epoch).
  void start_epoch(int64_t epoch, int64_t start_batch = 0);
  // Next batch of the current epoch; nullopt at its end.
  std::optional<Batch> next();
  // Bytes of decoded samples this loader keeps, and how many samples were not kept (cache full).
  int64_t cached_bytes() const { return cached_bytes_.load(); }
  int64_t cache_misses_full() const { return cache_full_.load(); }
  // The cap `cache_max_bytes = -1` stands for: a quarter of physical memory.
  static int64_t default_cache_max_bytes();

 private:
  void stop_workers();
  void worker_loop();
  Batch make_batch(int64_t b);
  SampleTensors sample(int64_t manifest_index);

  std::shared_ptr<const Manifest> manifest_;
  std::vector<int64_t> indices_;
  std::shared_ptr<const Preprocessor> pre_;
  LoaderOptions opt_;
  Targets targets_;
  std::shared_ptr<const ClassMap> classes_;
  int shard_rank_ = 0, shard_world_ = 1;
  bool shard_pad_ = true;

  std::vector<int64_t> order_;
  int64_t epoch_ = 0;
  int64_t n_batches_ = 0, next_claim_ = 0, next_out_ = 0;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;
  std::vector<int64_t> in_progress_;  // per worker: the sample being decoded (-1 idle)
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  bool stop_ = false;
  std::vector<std::thread> threads_;

  std::vector<std::shared_ptr<const SampleTensors>> cache_;
  std::mutex cache_mu_;
  int64_t cache_cap_ = 0;
  std::atomic<int64_t> cached_bytes_{0}, cache_full_{0};
};

}  // namespace braid::data
