// braid/serve/batcher.cpp — the request batcher of the server.
#include "braid/serve/batcher.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>

#include "braid/core/runtime.h"

namespace braid::serve {

Batcher::Batcher(Embedder& e, BatcherOptions opt) : e_(e), opt_(opt) {
  if (opt_.max_batch < 1) opt_.max_batch = 1;
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // answer anything left
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& it : queue_) it->done.set_exception(std::make_exception_ptr(std::runtime_error("server is shutting down")));
  queue_.clear();
}

torch::Tensor Batcher::embed(const std::string& modality, torch::Tensor input) {
  auto item = std::make_shared<Item>();
  item->modality = modality;
  item->input = std::move(input);
  auto fut = item->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) throw std::runtime_error("server is shutting down");
    queue_.push_back(item);
  }
  cv_.notify_all();
  return fut.get();
}

void Batcher::loop() {
  at::internal::lazy_init_num_threads();
  if (opt_.threads > 0) at::set_num_threads(opt_.threads);
  while (true) {
    std::vector<std::shared_ptr<Item>> take;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      const auto deadline = std::chrono::steady_clock::now() +
                            std::chrono::microseconds(static_cast<int64_t>(opt_.wait_ms * 1000.0));
      cv_.wait_until(lock, deadline, [&] { return stop_ || static_cast<int>(queue_.size()) >= opt_.max_batch; });
      if (stop_) return;
      const std::string mod = queue_.front()->modality;
      for (auto it = queue_.begin(); it != queue_.end() && static_cast<int>(take.size()) < opt_.max_batch;) {
        if ((*it)->modality == mod) {
          take.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    try {
      std::vector<torch::Tensor> xs;
      xs.reserve(take.size());
      for (auto& t : take) xs.push_back(t->input);
      const std::string& mod = take.front()->modality;
      auto b = query_batch(mod, xs);
      auto v = e_.embed(mod, b.mods.at(mod));
      for (size_t i = 0; i < take.size(); ++i) take[i]->done.set_value(v[static_cast<int64_t>(i)].clone());
    } catch (...) {
      auto ex = std::current_exception();
      for (auto& t : take) t->done.set_exception(ex);
    }
    batches_ += 1;
    items_ += static_cast<int64_t>(take.size());
    int64_t prev = max_seen_.load();
    while (static_cast<int64_t>(take.size()) > prev && !max_seen_.compare_exchange_weak(prev, take.size())) {
    }
  }
}

}  // namespace braid::serve
