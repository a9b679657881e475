// braid/serve/batcher.h — batches embedding requests of concurrent clients into one forward.
//
// Request threads preprocess their own input (in parallel) and hand the tensor to `embed`, which
// blocks. One batcher thread waits for the first pending request, then collects more for up to
// `wait_ms` or until `max_batch` are pending, runs one forward of the requests that share the first
// one's modality (NoGradGuard, inside Embedder::embed) and answers each.
#pragma once

#include <torch/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "braid/serve/embedder.h"

namespace braid::serve {

struct BatcherOptions {
  int max_batch = 32;
  double wait_ms = 3.0;
  int threads = 0;  // intra-op threads of the forward (0 = all cores)
};

class Batcher {
 public:
  Batcher(Embedder& e, BatcherOptions opt);
  ~Batcher();
  // `input`: one preprocessed sample (preprocess_query). Returns its vector [D]; rethrows the
  // forward's error. After stop(), throws std::runtime_error.
  torch::Tensor embed(const std::string& modality, torch::Tensor input);
  void stop();

  int64_t batches() const { return batches_; }  // forwards run
  int64_t items() const { return items_; }      // requests answered
  int64_t max_seen() const { return max_seen_; }  // largest batch

 private:
  struct Item {
    std::string modality;
    torch::Tensor input;
    std::promise<torch::Tensor> done;
  };
  void loop();

  Embedder& e_;
  BatcherOptions opt_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Item>> queue_;
  bool stop_ = false;
  std::atomic<int64_t> batches_{0}, items_{0}, max_seen_{0};
  std::thread thread_;
};

}  // namespace braid::serve
