// braid/train/optim.h — the trainer's optimizer and gradient utilities, as multi-tensor steps.
//
// torch::optim::AdamW updates one parameter at a time: ~10 kernels per tensor, so a model with a
// few hundred tensors spends milliseconds a step launching kernels on a GPU (measured there:
// ../shared/GPU.md). MultiTensorAdamW is the same update (same formulas, same state, same
// checkpoint format: it *is* a torch::optim::AdamW) done with ATen's multi-tensor `_foreach_*`
// kernels, or with the single fused `_fused_adamw_` kernel on CUDA with LibTorch >= 2.1.
// The implementation is chosen by `impl`: "loop" (torch::optim::AdamW itself), "foreach",
// "fused", or "auto" (= fused: CUDA's `_fused_adamw_` where available, else foreach; on the CPU one
// loop per float32 tensor doing the whole update in one pass, AVX-512 where the CPU has it, with
// foreach for other dtypes or layouts); recipe key `train.adamw` (`braid train`/`bench speed`
// also take the BRAID_ADAMW environment variable as an override, read in apps/).
#pragma once

#include <torch/optim/adamw.h>

#include <memory>
#include <string>
#include <vector>

namespace braid::train {

struct TrainOptions;

class MultiTensorAdamW : public torch::optim::AdamW {
 public:
  MultiTensorAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions o, std::string impl = "auto");
  torch::Tensor step(LossClosure closure = nullptr) override;
  // The implementation the last step used: loop | foreach | fused.
  const std::string& impl() const { return used_; }
  // Tests: false makes the CPU fused step use its scalar loop instead of AVX-512 (default true).
  void set_cpu_avx512(bool on);

 private:
  std::string impl_, used_;
  bool cpu_avx512_ = true;
};

// AdamW (MultiTensorAdamW) or SGD from the recipe's train section.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& to, std::vector<torch::Tensor> params);

// Zero the gradients that exist (one multi-tensor kernel; the tensors are kept, so gradient
// buckets that view them stay valid).
void zero_grads(const std::vector<torch::Tensor>& params);

// Scale the gradients so that their global L2 norm is at most `max_norm` (the formula of
// torch::nn::utils::clip_grad_norm_: coef = min(1, max_norm / (norm + 1e-6))), with multi-tensor
// kernels on CUDA (torch's per-tensor function on the CPU). Returns the norm before clipping as a
// 0-dim tensor on the gradients' device: on CUDA nothing waits for the device until the caller reads it.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace braid::train
