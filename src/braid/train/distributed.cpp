#include "braid/train/distributed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <torch/version.h>
#ifdef BRAID_HAVE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef BRAID_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/process.h"
#include "braid/core/runtime.h"

namespace braid::train {

namespace {

using ms = std::chrono::milliseconds;

ms to_ms(double s) { return ms(static_cast<int64_t>(s * 1000)); }

}  // namespace

int DistOptions::default_threads() const {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int local = local_world_size > 0 ? local_world_size : 1;
  return std::max(1, cores / local);
}

std::string new_job_token() {
  unsigned char b[16];
  std::ifstream f("/dev/urandom", std::ios::binary);
  f.read(reinterpret_cast<char*>(b), sizeof b);
  if (!f) throw std::runtime_error("/dev/urandom: cannot read a job token");
  std::string hex;
  for (unsigned char c : b) hex += fmt::format("{:02x}", c);
  return hex;
}

bool is_plain_file_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

std::string write_private_files(const std::vector<std::pair<std::string, std::string>>& files, const std::string& tag) {
  for (const auto& [name, bytes] : files)
    BRAID_INPUT_CHECK(is_plain_file_name(name), "distributed: received a file named {}; expected a plain file name "
                      "(no '/', '\\', NUL, '.' or '..')", nlohmann::json(name).dump(-1, ' ', true,
                      nlohmann::json::error_handler_t::replace));
  BRAID_INPUT_CHECK(is_plain_file_name(tag), "write_private_files: bad tag '{}'", tag);
  std::string tmpl = (std::filesystem::temp_directory_path() / ("braid-" + tag + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error(fmt::format("{}: mkdtemp failed: {}", tmpl, std::strerror(errno)));
  try {
    for (const auto& [name, bytes] : files) atomic_write_text(tmpl + "/" + name, bytes);
  } catch (...) {
    remove_tree(tmpl);
    throw;
  }
  return tmpl;
}

void DistOptions::validate() const {
  BRAID_INPUT_CHECK(world_size >= 1, "--world-size (or WORLD_SIZE): expected a positive integer, got {}", world_size);
  BRAID_INPUT_CHECK(rank >= 0 && rank < world_size, "--rank (or RANK): expected 0..{} for world size {}, got {}",
                    world_size - 1, world_size, rank);
  BRAID_INPUT_CHECK(master_port >= 1 && master_port <= 65535,
                    "--master-port (or MASTER_PORT): expected a TCP port 1..65535, got {}", master_port);
  BRAID_INPUT_CHECK(!master_addr.empty(), "--master-addr (or MASTER_ADDR): expected a host name or address");
  BRAID_INPUT_CHECK(timeout_s > 0, "--dist-timeout: expected a positive number of seconds, got {}", timeout_s);
  BRAID_INPUT_CHECK(bucket_mb > 0, "--bucket-mb: expected a positive size in MB, got {}", bucket_mb);
}

#ifdef BRAID_HAVE_GLOO

// 2.x moved the collectives of ProcessGroupGloo/NCCL onto c10d::Backend.
#if TORCH_VERSION_MAJOR >= 2
using Group = c10d::Backend;
#else
using Group = c10d::ProcessGroup;
#endif

// ---------------------------------------------------------------------------------------------
// Gradient buckets. Parameters are assigned to buckets in reverse registration order (the
// order backward roughly produces their gradients), a new bucket starting when the dtype or
// device changes or the size limit is reached. All ranks build the same layout.

struct Bucket {
  std::vector<size_t> params;    // indices into Impl::params
  std::vector<int64_t> offsets;  // element offset of each in `flat`
  torch::Tensor flat;
  int64_t pending = 0;           // gradients still to arrive this step
  c10::intrusive_ptr<c10d::Work> work;
};

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Group> gloo;
#ifdef BRAID_HAVE_NCCL
  c10::intrusive_ptr<Group> nccl;
#endif
  std::vector<torch::Tensor> params;
  std::vector<std::pair<size_t, size_t>> where;  // param -> (bucket, slot)
  std::vector<char> arrived;                     // param's gradient seen this step
  std::vector<Bucket> buckets;
  std::vector<std::pair<torch::Tensor, unsigned>> hooks;
  size_t next_launch = 0;
  bool armed = false;

  Group& group_for(const torch::Tensor& t) {
#ifdef BRAID_HAVE_NCCL
    if (t.is_cuda() && nccl) return *nccl;
#endif
    TORCH_CHECK(!t.is_cuda(), "distributed: CUDA tensors need a build with NCCL (this one has Gloo only)");
    return *gloo;
  }
};

Distributed::Distributed(const DistOptions& opt) : opt_(opt), impl_(std::make_unique<Impl>()) {
  opt_.validate();
  const auto timeout = to_ms(opt_.timeout_s);
  spdlog::info("distributed: rank {} of {} joining {}:{} (timeout {:.0f} s)", opt_.rank, opt_.world_size,
               opt_.master_addr, opt_.master_port, opt_.timeout_s);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(opt_.master_port);
    so.isServer = opt_.rank == 0;
    so.numWorkers = static_cast<size_t>(opt_.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(opt_.master_addr, so);
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("braid", tcp);
  } catch (const std::exception& e) {
    throw PeerLost(fmt::format(
        "distributed: rank {} could not rendezvous with {} rank(s) at {}:{} within {:.0f} s ({}); check that every "
        "rank was started with the same MASTER_ADDR/MASTER_PORT/WORLD_SIZE",
        opt_.rank, opt_.world_size, opt_.master_addr, opt_.master_port, opt_.timeout_s,
        c10::GetExceptionString(e).substr(0, 300)));
  }
  check_job_token();
  try {
    auto go = c10d::ProcessGroupGloo::Options::create(timeout);
    if (!opt_.interface.empty())
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(opt_.interface));
    else if (opt_.master_addr == "127.0.0.1" || opt_.master_addr == "localhost")
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    go->threads = 2;
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", impl_->store), opt_.rank, opt_.world_size, go);
#ifdef BRAID_HAVE_NCCL
    if (torch::cuda::is_available()) {
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", impl_->store), opt_.rank, opt_.world_size, no);
    }
#endif
  } catch (const std::exception& e) {
    throw PeerLost(fmt::format("distributed: rank {} could not connect its process group: {}", opt_.rank,
                                         c10::GetExceptionString(e).substr(0, 300)));
  }
  spdlog::info("distributed: rank {} of {} connected (gloo)", opt_.rank, opt_.world_size);
}

Distributed::~Distributed() {
  for (auto& [t, h] : impl_->hooks) t.remove_hook(h);
}

// Rank 0 publishes its token; every other rank compares it with its own and publishes its own, which rank 0
// compares in turn, so both sides of a mismatch name it. Before Gloo connects: a stranger never joins the group.
void Distributed::check_job_token() {
  auto& store = *impl_->store;
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  const auto timeout = to_ms(opt_.timeout_s);
  auto mismatch = [&](int other) {
    return InputError(fmt::format(
        "distributed: rank {} and rank {} hold different job tokens (BRAID_JOB_TOKEN): they were started for two "
        "different jobs that share {}:{}; give each job its own MASTER_PORT", opt_.rank, other, opt_.master_addr,
        opt_.master_port));
  };
  try {
    if (is_main()) {
      store.set("job-token", bytes(opt_.job_token));
      for (int r = 1; r < opt_.world_size; ++r) {
        const std::string key = "job-token/" + std::to_string(r);
        store.wait({key}, timeout);
        const bool same = store.get(key) == bytes(opt_.job_token);
        // The store lives in this process: keep it up until rank r has read rank 0's token, so that a
        // mismatch is reported by both sides instead of as a lost connection.
        store.wait({"job-token-read/" + std::to_string(r)}, timeout);
        if (!same) throw mismatch(r);
      }
    } else {
      store.set("job-token/" + std::to_string(opt_.rank), bytes(opt_.job_token));
      store.wait({"job-token"}, timeout);
      const bool same = store.get("job-token") == bytes(opt_.job_token);
      store.set("job-token-read/" + std::to_string(opt_.rank), std::vector<uint8_t>{1});
      if (!same) throw mismatch(0);
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
    throw PeerLost(fmt::format("distributed: rank {} of {}: the job token check failed ({})", opt_.rank,
                               opt_.world_size, msg.substr(0, msg.find('\n'))));
  }
}

// Wait for `work`, turning a Gloo failure into an error that says who and what.
static void wait_work(const c10::intrusive_ptr<c10d::Work>& work, const DistOptions& o, const std::string& what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    throw PeerLost(fmt::format(
        "distributed: rank {} of {}: {} failed: a peer rank exited or did not answer within {:.0f} s ({})", o.rank,
        o.world_size, what, o.timeout_s, msg));
  }
}

std::string Distributed::share_from_main(const std::string& data, double limit_s) {
  auto& store = *impl_->store;
  const std::string key = "setup";
  try {
    if (is_main()) {
      store.set(key, std::vector<uint8_t>(data.begin(), data.end()));
      // wait until every rank has read it: rank 0 may exit right after sharing an error, and
      // its store goes with it
      std::vector<std::string> acks;
      for (int r = 1; r < opt_.world_size; ++r) acks.push_back("setup-read/" + std::to_string(r));
      store.wait(acks, to_ms(opt_.timeout_s));
      return data;
    }
    auto deadline = std::chrono::steady_clock::now() + to_ms(limit_s);
    while (!store.check({key})) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error(fmt::format("rank 0 did not finish its setup within {:.0f} s", limit_s));
      check_interrupt();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto v = store.get(key);
    store.set("setup-read/" + std::to_string(opt_.rank), std::vector<uint8_t>{1});
    return std::string(v.begin(), v.end());
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
    throw PeerLost(fmt::format("distributed: rank {} of {}: handing out rank 0's setup failed ({})",
                                         opt_.rank, opt_.world_size, msg.substr(0, msg.find('\n'))));
  }
}

std::string Distributed::broadcast_bytes(const std::string& data, const std::string& what) {
  auto n = torch::tensor({static_cast<int64_t>(is_main() ? data.size() : 0)}, torch::kLong);
  std::vector<torch::Tensor> v{n};
  wait_work(impl_->gloo->broadcast(v), opt_, "broadcast of " + what);
  const int64_t size = n.item<int64_t>();
  auto buf = torch::empty({std::max<int64_t>(size, 1)}, torch::kUInt8);
  if (is_main() && size > 0) std::memcpy(buf.data_ptr<uint8_t>(), data.data(), data.size());
  std::vector<torch::Tensor> b{buf};
  wait_work(impl_->gloo->broadcast(b), opt_, "broadcast of " + what);
  return std::string(reinterpret_cast<const char*>(buf.data_ptr<uint8_t>()), static_cast<size_t>(size));
}

// Broadcast a list of tensors from rank 0, packed per dtype/device into one flat tensor.
static void broadcast_tensors(Distributed::Impl& im, const DistOptions& o, std::vector<torch::Tensor> ts,
                              const std::string& what) {
  torch::NoGradGuard ng;
  while (!ts.empty()) {
    std::vector<torch::Tensor> same, rest;
    for (auto& t : ts)
      (t.scalar_type() == ts[0].scalar_type() && t.device() == ts[0].device() ? same : rest).push_back(t);
    std::vector<torch::Tensor> flat;
    for (auto& t : same) flat.push_back(t.reshape({-1}));
    std::vector<torch::Tensor> buf{torch::cat(flat)};
    wait_work(im.group_for(buf[0]).broadcast(buf), o, "broadcast of " + what);
    int64_t off = 0;
    for (auto& t : same) {
      t.copy_(buf[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
    ts = std::move(rest);
  }
}

void Distributed::broadcast_module(torch::nn::Module& m) {
  std::vector<torch::Tensor> ts;
  for (auto& p : m.parameters()) ts.push_back(p);
  for (auto& b : m.buffers()) ts.push_back(b);
  broadcast_tensors(*impl_, opt_, ts, "initial parameters");
}

void Distributed::broadcast_buffers(torch::nn::Module& m) {
  auto bs = m.buffers();
  if (!bs.empty()) broadcast_tensors(*impl_, opt_, bs, "buffers");
}

std::vector<double> Distributed::allreduce_sum(const std::vector<double>& v, const std::string& what) {
  auto t = torch::tensor(v, torch::kDouble);
  std::vector<torch::Tensor> ts{t};
  wait_work(impl_->gloo->allreduce(ts), opt_, what);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

objectives::GatheredRows Distributed::gather_rows(const torch::Tensor& x, const std::string& what) {
  TORCH_CHECK(x.dim() == 2, "gather_rows: expected [rows, D]");
  const int world = opt_.world_size;
  auto& group = impl_->group_for(x);
  auto gather = [&](const torch::Tensor& t) {  // world copies of t's shape, filled in rank order
    std::vector<torch::Tensor> in{t};
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < world; ++r) out[0].push_back(torch::empty_like(t));
    wait_work(group.allgather(out, in), opt_, what);
    return out[0];
  };
  // row counts first (the last batch of an epoch, or rows missing a modality, differ per rank),
  // then the rows padded to the largest count
  auto counts = gather(torch::full({1}, x.size(0), x.options().dtype(torch::kLong)));
  std::vector<int64_t> n;
  for (const auto& c : counts) n.push_back(c.item<int64_t>());
  const int64_t most = *std::max_element(n.begin(), n.end());
  auto padded = torch::zeros({most, x.size(1)}, x.options().dtype(torch::kFloat));
  padded.slice(0, 0, x.size(0)).copy_(x);
  auto rows = gather(padded);
  std::vector<torch::Tensor> parts;
  int64_t offset = 0;
  for (int r = 0; r < world; ++r) {
    parts.push_back(rows[r].slice(0, 0, n[r]));
    if (r < opt_.rank) offset += n[r];
  }
  return {torch::cat(parts, 0), offset};
}

void Distributed::barrier(const std::string& what) {
  // a one-element all-reduce: Gloo's barrier has no per-call timeout in 1.13's C++ API
  allreduce_sum({0.0}, what);
}

void Distributed::attach(torch::nn::Module& m) {
  auto& im = *impl_;
  TORCH_CHECK(im.params.empty(), "Distributed::attach called twice");
  for (auto& p : m.parameters())
    if (p.requires_grad()) im.params.push_back(p);
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(opt_.bucket_mb * 1024 * 1024));
  im.where.resize(im.params.size());
  int64_t bytes = 0;
  for (size_t k = im.params.size(); k-- > 0;) {
    const auto& p = im.params[k];
    bool fresh = im.buckets.empty() || bytes + static_cast<int64_t>(p.numel() * p.element_size()) > cap ||
                 im.buckets.back().flat.scalar_type() != p.scalar_type() ||
                 im.buckets.back().flat.device() != p.device();
    if (fresh) {
      im.buckets.emplace_back();
      im.buckets.back().flat = torch::empty({0}, p.options());
      bytes = 0;
    }
    auto& b = im.buckets.back();
    int64_t off = b.params.empty() ? 0 : b.offsets.back() + im.params[b.params.back()].numel();
    im.where[k] = {im.buckets.size() - 1, b.params.size()};
    b.params.push_back(k);
    b.offsets.push_back(off);
    bytes += p.numel() * p.element_size();
  }
  for (auto& b : im.buckets) {
    int64_t n = b.offsets.back() + im.params[b.params.back()].numel();
    b.flat = torch::zeros({n}, b.flat.options());
  }
  im.arrived.assign(im.params.size(), 0);
  spdlog::debug("distributed: {} parameter tensors in {} gradient bucket(s)", im.params.size(), im.buckets.size());
  if (!opt_.overlap) return;
  // Overlap: a hook per parameter copies its gradient into its bucket as autograd produces it;
  // a bucket is launched when full and all lower-index buckets are launched (same order on
  // every rank, whatever order the hooks fire in).
  for (size_t k = 0; k < im.params.size(); ++k) {
    auto h = im.params[k].register_hook([this, k](const torch::Tensor& g) {
      auto& im = *impl_;
      if (!im.armed) return;
      auto [bi, slot] = im.where[k];
      auto& b = im.buckets[bi];
      TORCH_CHECK(!im.arrived[k], "distributed: a parameter received two gradients in one step (more than one "
                                  "backward per step is not supported)");
      im.arrived[k] = 1;
      torch::NoGradGuard ng;
      b.flat.narrow(0, b.offsets[slot], g.numel()).view(g.sizes()).copy_(g);
      if (--b.pending == 0) {
        while (im.next_launch < im.buckets.size() && im.buckets[im.next_launch].pending == 0) {
          auto& nb = im.buckets[im.next_launch++];
          std::vector<torch::Tensor> v{nb.flat};
          nb.work = im.group_for(nb.flat).allreduce(v);
        }
      }
    });
    im.hooks.emplace_back(im.params[k], h);
  }
}

int64_t Distributed::buckets() const { return static_cast<int64_t>(impl_->buckets.size()); }

void Distributed::before_backward() {
  auto& im = *impl_;
  for (auto& b : im.buckets) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.work.reset();
  }
  std::fill(im.arrived.begin(), im.arrived.end(), 0);
  im.next_launch = 0;
  im.armed = opt_.overlap;
}

void Distributed::after_backward() {
  auto& im = *impl_;
  im.armed = false;
  torch::NoGradGuard ng;
  // Gradients not seen by a hook (after-backward mode, or parameters unused this step) are
  // packed now; an unused parameter contributes zeros.
  for (size_t k = 0; k < im.params.size(); ++k) {
    if (im.arrived[k]) continue;
    auto [bi, slot] = im.where[k];
    auto& b = im.buckets[bi];
    auto dst = b.flat.narrow(0, b.offsets[slot], im.params[k].numel());
    const auto& g = im.params[k].grad();
    if (g.defined())
      dst.view(g.sizes()).copy_(g);
    else
      dst.zero_();
  }
  for (size_t i = im.next_launch; i < im.buckets.size(); ++i) {
    std::vector<torch::Tensor> v{im.buckets[i].flat};
    im.buckets[i].work = im.group_for(im.buckets[i].flat).allreduce(v);
  }
  im.next_launch = im.buckets.size();
  const double inv = 1.0 / opt_.world_size;
  for (auto& b : im.buckets) {
    wait_work(b.work, opt_, "gradient all-reduce");
    b.flat.mul_(inv);
    for (size_t s = 0; s < b.params.size(); ++s) {
      auto& p = im.params[b.params[s]];
      auto src = b.flat.narrow(0, b.offsets[s], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(src);
      else
        p.mutable_grad() = src.clone();
    }
  }
}

bool distributed_available() { return true; }

#else  // no Gloo at build time

bool distributed_available() { return false; }

struct Distributed::Impl {};

Distributed::Distributed(const DistOptions& opt) : opt_(opt) {
  opt_.validate();
  throw std::runtime_error("distributed training is not available: this braid was built without Gloo "
                           "(install libgloo-dev and rebuild)");
}
Distributed::~Distributed() = default;
void Distributed::check_job_token() {}
std::string Distributed::share_from_main(const std::string& d, double) { return d; }
std::string Distributed::broadcast_bytes(const std::string&, const std::string&) { return {}; }
void Distributed::broadcast_module(torch::nn::Module&) {}
void Distributed::broadcast_buffers(torch::nn::Module&) {}
std::vector<double> Distributed::allreduce_sum(const std::vector<double>& v, const std::string&) { return v; }
void Distributed::barrier(const std::string&) {}
objectives::GatheredRows Distributed::gather_rows(const torch::Tensor& x, const std::string&) { return {x, 0}; }
void Distributed::attach(torch::nn::Module&) {}
void Distributed::before_backward() {}
void Distributed::after_backward() {}
int64_t Distributed::buckets() const { return 0; }

#endif  // BRAID_HAVE_GLOO

}  // namespace braid::train
