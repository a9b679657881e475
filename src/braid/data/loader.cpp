#include "braid/data/loader.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <ATen/Parallel.h>
#include <torch/torch.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include <unistd.h>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"

namespace braid::data {

static bool all_integers(const std::set<std::string>& s) {
  for (const auto& x : s) {
    if (x.empty()) return false;
    size_t i = x[0] == '-' ? 1 : 0;
    if (i == x.size()) return false;
    for (; i < x.size(); ++i)
      if (x[i] < '0' || x[i] > '9' || x.size() > 18) return false;
  }
  return true;
}

ClassMap ClassMap::from_manifest(const Manifest& m, const std::string& split) {
  std::set<std::string> labels;
  for (auto i : m.split_indices(split)) {
    const auto& s = m.samples()[i];
    BRAID_INPUT_CHECK(s.label.has_value(), "{}: sample '{}' has no 'label'; classification needs one on every {} sample",
                      s.where(m.path()), s.id, split);
    labels.insert(*s.label);
  }
  BRAID_INPUT_CHECK(labels.size() >= 2, "{}: the {} split has {} distinct label(s); classification needs at least 2",
                    m.path(), split, labels.size());
  ClassMap c;
  c.names_.assign(labels.begin(), labels.end());
  if (all_integers(labels))
    std::sort(c.names_.begin(), c.names_.end(),
              [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  for (size_t i = 0; i < c.names_.size(); ++i) c.ids_[c.names_[i]] = static_cast<int64_t>(i);
  return c;
}

ClassMap ClassMap::load(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: not a class map ({})", path, e.what());
  }
  BRAID_INPUT_CHECK(j.is_object() && j.contains("classes") && j["classes"].is_array(),
                    "{}: expected {{\"classes\": [names...]}}", path);
  ClassMap c;
  for (const auto& n : j["classes"]) {
    BRAID_INPUT_CHECK(n.is_string(), "{}: class names must be strings", path);
    c.ids_[n.get<std::string>()] = static_cast<int64_t>(c.names_.size());
    c.names_.push_back(n.get<std::string>());
  }
  return c;
}

void ClassMap::save(const std::string& path) const {
  atomic_write_text(path, nlohmann::json{{"classes", names_}}.dump(1) + "\n");
}

int64_t ClassMap::id(const std::string& label, const std::string& where) const {
  auto it = ids_.find(label);
  BRAID_INPUT_CHECK(it != ids_.end(), "{}: label '{}' is not in the class map ({} classes from the train split)", where,
                    label, names_.size());
  return it->second;
}

Loader::Loader(std::shared_ptr<const Manifest> manifest, std::vector<int64_t> indices,
               std::shared_ptr<const Preprocessor> pre, LoaderOptions opt, Targets targets,
               std::shared_ptr<const ClassMap> classes)
    : manifest_(std::move(manifest)), indices_(std::move(indices)), pre_(std::move(pre)), opt_(opt),
      targets_(targets), classes_(std::move(classes)) {
  BRAID_INPUT_CHECK(opt_.batch_size > 0, "batch size must be positive, got {}", opt_.batch_size);
  BRAID_INPUT_CHECK(opt_.workers >= 1 && opt_.workers <= LoaderOptions::kMaxWorkers,
                    "data.workers is {}; expected 1..{} decoding threads", opt_.workers, LoaderOptions::kMaxWorkers);
  BRAID_INPUT_CHECK(opt_.prefetch >= 1 && opt_.prefetch <= LoaderOptions::kMaxPrefetch,
                    "data.prefetch is {}; expected 1..{} batches", opt_.prefetch, LoaderOptions::kMaxPrefetch);
  BRAID_INPUT_CHECK(opt_.cache_max_bytes >= -1, "data cache cap is {} bytes; expected -1 (automatic) or at least 0",
                    opt_.cache_max_bytes);
  cache_cap_ = opt_.cache_max_bytes < 0 ? default_cache_max_bytes() : opt_.cache_max_bytes;
  if (opt_.cache) cache_.resize(manifest_->samples().size());
  // Check targets up front so a bad label is named before any work starts.
  for (auto i : indices_) {
    const auto& s = manifest_->samples()[i];
    if (targets_ == Targets::Labels) {
      BRAID_INPUT_CHECK(s.label.has_value(), "{}: sample '{}' has no 'label'", s.where(manifest_->path()), s.id);
      classes_->id(*s.label, s.where(manifest_->path()));
    } else if (targets_ == Targets::Regression) {
      BRAID_INPUT_CHECK(!s.target.empty(), "{}: sample '{}' has no 'target'", s.where(manifest_->path()), s.id);
    }
  }
}

namespace {
// Bytes of decoded samples cached by all loaders of the process (the cap is over this total).
std::atomic<int64_t> g_cached_bytes{0};

int64_t sample_bytes(const SampleTensors& s) {
  int64_t n = 0;
  for (const auto& [k, t] : s.mods) n += t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
  return n;
}
}  // namespace

int64_t Loader::default_cache_max_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return int64_t(1) << 30;  // unknown: 1 GiB
  return static_cast<int64_t>(pages) * page / 4;
}

Loader::~Loader() {
  stop_workers();
  g_cached_bytes -= cached_bytes_.load();
}

void Loader::set_shard(int rank, int world, bool pad) {
  BRAID_INPUT_CHECK(world >= 1 && rank >= 0 && rank < world, "loader shard: rank {} of {} is out of range", rank, world);
  shard_rank_ = rank;
  shard_world_ = world;
  shard_pad_ = pad;
}

int64_t Loader::shard_samples() const {
  int64_t n = samples(), w = shard_world_;
  if (shard_pad_ && n > 0) return (n + w - 1) / w;
  return n / w + (shard_rank_ < n % w ? 1 : 0);
}

int64_t Loader::batches_per_epoch() const {
  int64_t n = shard_samples();
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order = indices_;
  if (opt_.shuffle) {
    std::mt19937_64 rng(mix_seed(opt_.seed, 0x10ade5, static_cast<uint64_t>(epoch)));
    // Fisher-Yates with our own draws, so the order is the same with every standard library
    for (size_t i = order.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(rng() % i);
      std::swap(order[i - 1], order[j]);
    }
  }
  if (shard_world_ > 1) {
    const size_t n = order.size(), w = static_cast<size_t>(shard_world_);
    if (shard_pad_)
      for (size_t i = 0; order.size() % w != 0; ++i) order.push_back(order[i % n]);  // n > 0 here
    std::vector<int64_t> mine;
    for (size_t i = static_cast<size_t>(shard_rank_); i < order.size(); i += w) mine.push_back(order[i]);
    return mine;
  }
  return order;
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Loader::start_epoch(int64_t epoch, int64_t start_batch) {
  stop_workers();
  order_ = epoch_order(epoch);
  epoch_ = epoch;
  n_batches_ = batches_per_epoch();
  BRAID_INPUT_CHECK(start_batch >= 0 && start_batch <= n_batches_, "resume position {} is past the {} batches of an epoch",
                    start_batch, n_batches_);
  next_claim_ = next_out_ = start_batch;
  ready_.clear();
  errors_.clear();
  stop_ = false;
  int w = std::max(1, opt_.workers);
  in_progress_.assign(w, -1);
  for (int i = 0; i < w; ++i) threads_.emplace_back([this] { worker_loop(); });
}

SampleTensors Loader::sample(int64_t mi) {
  if (opt_.cache) {
    std::lock_guard<std::mutex> lk(cache_mu_);
    if (cache_[mi]) return *cache_[mi];
  }
  auto st = std::make_shared<SampleTensors>(pre_->process(manifest_->samples()[mi], manifest_->path()));
  if (opt_.cache) {
    const int64_t bytes = sample_bytes(*st);
    std::lock_guard<std::mutex> lk(cache_mu_);
    if (cache_[mi]) return *st;  // another worker decoded it meanwhile
    // Reserve the bytes against the process-wide total; over the cap the sample is not kept.
    int64_t cur = g_cached_bytes.load();
    while (true) {
      if (cur + bytes > cache_cap_) {
        ++cache_full_;
        return *st;
      }
      if (g_cached_bytes.compare_exchange_weak(cur, cur + bytes)) break;
    }
    cached_bytes_ += bytes;
    cache_[mi] = st;
  }
  return *st;
}

Batch Loader::make_batch(int64_t b) {
  int64_t lo = b * opt_.batch_size, hi = std::min<int64_t>(lo + opt_.batch_size, static_cast<int64_t>(order_.size()));
  std::vector<SampleTensors> ss;
  std::vector<int64_t> idx(order_.begin() + lo, order_.begin() + hi);
  for (auto i : idx) {
    ss.push_back(sample(i));
    // text read under every view ("text:<view>", view: random): pick this epoch's view
    auto& mods = ss.back().mods;
    std::vector<std::string> views;
    for (const auto& kv : mods)
      if (kv.first.rfind("text:", 0) == 0) views.push_back(kv.first);
    if (opt_.random_text_view && !views.empty()) {
      std::mt19937_64 rng(mix_seed(opt_.seed ^ 0x7e47, static_cast<uint64_t>(epoch_), static_cast<uint64_t>(i)));
      mods["text"] = mods[views[rng() % views.size()]];
    }
    for (const auto& v : views) mods.erase(v);
  }
  Batch batch = collate(ss, pre_->modalities(), idx);
  const int64_t B = batch.size();
  if (targets_ == Targets::Labels) {
    batch.labels = torch::empty({B}, torch::kLong);
    auto acc = batch.labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < B; ++i) {
      const auto& s = manifest_->samples()[idx[i]];
      acc[i] = classes_->id(*s.label, s.where(manifest_->path()));
    }
  } else if (targets_ == Targets::Regression) {
    int64_t D = manifest_->target_dim();
    batch.targets = torch::empty({B, D});
    for (int64_t i = 0; i < B; ++i) {
      const auto& t = manifest_->samples()[idx[i]].target;
      batch.targets[i].copy_(torch::tensor(t));
    }
  }
  return opt_.pin_memory ? batch.pinned() : batch;
}

void Loader::worker_loop() {
  // Decoding threads run their torch ops single-threaded: the training thread owns the cores,
  // and nested OpenMP teams from every worker would oversubscribe them.
  at::internal::lazy_init_num_threads();
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  size_t me;
  {
    std::lock_guard<std::mutex> lk(mu_);
    me = static_cast<size_t>(std::find(in_progress_.begin(), in_progress_.end(), -1) - in_progress_.begin());
    in_progress_[me] = -2;  // claimed slot
  }
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || (next_claim_ < n_batches_ && next_claim_ < next_out_ + opt_.prefetch); });
      if (stop_) return;
      b = next_claim_++;
      in_progress_[me] = b;
    }
    Batch batch;
    std::exception_ptr err;
    try {
      batch = make_batch(b);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (err)
        errors_[b] = err;
      else
        ready_[b] = std::move(batch);
      in_progress_[me] = -2;
    }
    cv_ready_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lk(mu_);
  if (next_out_ >= n_batches_) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(opt_.stall_seconds);
  while (!ready_.count(next_out_) && !errors_.count(next_out_)) {
    if (cv_ready_.wait_until(lk, deadline) == std::cv_status::timeout && !ready_.count(next_out_) &&
        !errors_.count(next_out_)) {
      int64_t lo = next_out_ * opt_.batch_size;
      const auto& s = manifest_->samples()[order_[lo]];
      throw std::runtime_error(fmt::format(
          "data loader: batch {} was not ready after {:.0f} s (stalled decoding; its first sample is {}); "
          "check the files it names",
          next_out_, opt_.stall_seconds, s.where(manifest_->path())));
    }
  }
  if (errors_.count(next_out_)) {
    auto e = errors_[next_out_];
    lk.unlock();
    stop_workers();
    std::rethrow_exception(e);
  }
  Batch b = std::move(ready_[next_out_]);
  ready_.erase(next_out_);
  ++next_out_;
  lk.unlock();
  cv_work_.notify_all();
  return b;
}

}  // namespace braid::data
