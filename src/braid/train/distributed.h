// braid/train/distributed.h — data-parallel training on PyTorch's c10d (Gloo on CPU).
//
// Every rank runs the same trainer on its own shard of each epoch (data::Loader::set_shard);
// this layer keeps the replicas identical:
//   - rendezvous through a c10d TCPStore (rank 0 hosts it at MASTER_ADDR:MASTER_PORT), then a
//     ProcessGroupGloo (ProcessGroupNCCL for CUDA tensors on builds that have it);
//   - rank 0's initial parameters and buffers are broadcast to all ranks;
//   - after each backward the gradients are averaged over ranks: they are packed into flat
//     buckets of about `bucket_mb` MB (parameters in reverse registration order, roughly the
//     order backward produces them), each bucket is all-reduced, divided by the world size and
//     copied back into `param.grad()`. With `overlap`, a bucket's all-reduce starts from
//     gradient hooks as soon as its last gradient is produced, while backward still runs;
//     buckets are always launched in the same (index) order on every rank, as Gloo requires.
// Every wait is bounded by `timeout_s`: a dead peer (socket closed) is reported at once, a hung
// one after the timeout, as a std::runtime_error naming this rank and what it was doing.
//
// Torch's c10d headers stay inside distributed.cpp; this header only needs <torch/nn/module.h>.
#pragma once

#include <torch/nn/module.h>

#include "braid/objectives/gather.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace braid::train {

// A collective or the rendezvous failed because another rank exited, hung or never came: this
// rank is not the cause. The CLI exits with code 3 for it, which lets the launcher name the
// rank that failed first.
class PeerLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DistOptions {
  int rank = 0;                          // this process, 0..world_size-1 (RANK)
  int world_size = 1;                    // processes in the job; 1 = not distributed (WORLD_SIZE)
  std::string master_addr = "127.0.0.1"; // host of rank 0's TCPStore (MASTER_ADDR)
  std::string interface;                 // network interface for Gloo ("" = by master_addr; GLOO_SOCKET_IFNAME)
  int master_port = 29500;               // its port (MASTER_PORT)
  int local_world_size = 0;              // processes on this machine (LOCAL_WORLD_SIZE; 0 = unknown)
  double timeout_s = 60;                 // rendezvous and every collective wait at most this long
  bool overlap = true;                   // all-reduce buckets from gradient hooks during backward
  double bucket_mb = 25;                 // gradient bucket size
  // The job's secret (BRAID_JOB_TOKEN; `braid train --nproc` makes a random one for its ranks). Every rank
  // checks it against rank 0's right after the rendezvous, before any other exchange: a process of another
  // job that reaches the same store (a MASTER_PORT collision) is refused. "" on every rank = no check.
  std::string job_token;

  bool enabled() const { return world_size > 1; }
  // Intra-op threads for this rank when the recipe leaves `threads` at 0: cores / local ranks.
  int default_threads() const;
  // InputError naming the flag when the values are inconsistent (world < 1, rank out of range, ...).
  void validate() const;
};

class Distributed {
 public:
  // Joins the job; blocks until all `world_size` ranks have joined (at most timeout_s).
  explicit Distributed(const DistOptions& opt);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return opt_.rank; }
  int world() const { return opt_.world_size; }
  bool is_main() const { return opt_.rank == 0; }
  const DistOptions& options() const { return opt_; }

  // Rank 0's `data` on every rank, through the store: the other ranks poll for it for up to
  // `limit_s` seconds (rank 0's setup, e.g. fitting a tokenizer, may take longer than one
  // collective's timeout); a dead rank 0 is reported at once.
  std::string share_from_main(const std::string& data, double limit_s);
  // Rank 0's bytes on every rank (`data` is only read on rank 0).
  std::string broadcast_bytes(const std::string& data, const std::string& what);
  // Copy rank 0's parameters and buffers into every rank's module (same architecture).
  void broadcast_module(torch::nn::Module& m);
  void broadcast_buffers(torch::nn::Module& m);
  // Element-wise sum over ranks (small vectors of scalars: losses, flags).
  std::vector<double> allreduce_sum(const std::vector<double>& v, const std::string& what);
  void barrier(const std::string& what);
  // Every rank's rows of x [b, D] (b may differ per rank, also 0; D must agree) in rank order, and
  // where this rank's rows start; no gradient (objectives/gather.h adds it back for this rank).
  objectives::GatheredRows gather_rows(const torch::Tensor& x, const std::string& what);

  // Gradient averaging for `m`'s trainable parameters. Call `attach` once, then per step:
  // zero the gradients, `before_backward()`, `loss.backward()`, `after_backward()`. After it
  // every rank holds the same averaged gradients. Gradients must be zeroed before backward.
  void attach(torch::nn::Module& m);
  void before_backward();
  void after_backward();
  int64_t buckets() const;

  struct Impl;  // c10d objects (distributed.cpp)

 private:
  void check_job_token();
  DistOptions opt_;
  std::unique_ptr<Impl> impl_;
};

// Whether this build has a distributed backend (Gloo; false on builds without libgloo-dev).
bool distributed_available();

// A random job token (32 hex digits from /dev/urandom) for a launcher to hand its ranks.
std::string new_job_token();

// Whether `name` is a plain file name: not empty, not "." or "..", without '/', '\\' or NUL. File names that
// arrive through the store (rank 0's run files) must be, or they could write outside their folder.
bool is_plain_file_name(const std::string& name);

// A fresh private folder (mkdtemp below the system temp folder, mode 0700: no other user can predict or
// pre-create it) holding `files` (name -> bytes). InputError naming the first name that is not plain; nothing
// is written then. `tag` becomes part of the folder name ("braid-<tag>-XXXXXX").
std::string write_private_files(const std::vector<std::pair<std::string, std::string>>& files, const std::string& tag);

}  // namespace braid::train
