// braid/objectives/codebook.h — a discrete codebook shared by several modalities (Uni-Code, Xia et al. 2023):
// nearest-code vector quantization with a straight-through gradient, an EMA codebook with Laplace smoothing,
// the multi-modal EMA (MM-EMA) that mixes paired modalities' features into each code update, the
// cross-modal commitment loss, dead-code reset and codebook health statistics.
//
// Formulas (docs/unicode.md, ALGORITHMS.md "Uni-Code / CMG"):
//   assignment  k* = argmin_k ‖s − e_k‖²;   ŝ = s + sg(e_{k*} − s)
//   EMA         N_k ← γN_k + (1−γ)n_k;  N̂_k = (N_k + ε) / (ΣN + Kε) · ΣN;
//               m_k ← γm_k + (1−γ)Σ_{s→k} t(s);  e_k = m_k / N̂_k
//   MM-EMA      for modality a, t(s^a) = 0.5·s^a + Σ_{b≠a} 0.5/(M−1)·s^b at the same (row, step) (or, with
//               teacher "attention", 0.5·s^a + Σ_{b≠a} 0.5/(M−1)·attn(s^a → s^b), a softmax(s^a s^bᵀ/√D)
//               average of b's steps of the same row); counts n_k are a's own assignments. Assignments
//               of every modality are taken from the codebook before the step; the count/sum update and
//               e = m / N̂ then run once per modality, one modality after the other. Without MM-EMA,
//               t(s^a) = s^a (a plain shared codebook, still updated once per modality).
//   commitment  Σ_a [2β·‖s^a − sg(q^a)‖² + Σ_{b≠a} β/(M−1)·‖s^a − sg(q^b)‖²] (means over elements; M = 2:
//               2β own + β other; M = 3: 2β own + 0.5β each other, as in the released code). With
//               cross_commit "nearest" the cross term uses, per (i, t), min_{t'} ‖s^a_{i,t} − sg(q^b_{i,t'})‖²
//               (divided by D, so that it is a mean over elements like the positional one).
//   reset       a code not assigned for `reset_after` updates becomes a random code assigned within the
//               last `recent` updates plus U(−1/1024, 1/1024) noise (or a random input vector of the update,
//               reset_from "features"); its EMA sum is set so that m_k / N_k reproduces the new code.
// Everything that changes during training (codebook, EMA counts and sums, last-use step, update
// counter) is a registered buffer, so checkpoints and resume keep it.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace braid::objectives {

struct CodebookOptions {
  int64_t codes = 400;         // K
  int64_t dim = 256;           // D
  double decay = 0.99;         // γ
  double epsilon = 1e-5;       // Laplace smoothing ε
  double beta = 0.25;          // commitment β
  bool mm_ema = true;          // mix paired modalities' features into each code update
  std::string teacher = "mean";  // MM-EMA teacher: "mean" (same positions, released code) | "attention"
  int64_t reset_after = 300;   // dead-code reset after this many updates unused; 0 = never
  int64_t recent = 100;        // a replacement is drawn from codes used within this many updates
  // Where a dead code's replacement comes from: "codes" (a random code used within `recent` updates, as
  // Uni-Code's released code; the reset code counts as just used) or "features" (a random input vector of
  // this update, as VQ image tokenizers do; the reset code gets `recent` updates to win an assignment before
  // it may be reset again, and live_codes() counts it only once it does; the first update also seeds every
  // code from random input vectors, with EMA counts of an even share, so no code starts far from the data).
  std::string reset_from = "codes";
  // Which of modality b's codes the cross term of the commitment pulls s^a_{i,t} toward:
  //   "position": q^b_{i,t}, the same (row, step) (released code; its modalities are aligned in time);
  //   "nearest":  the nearest of q^b_{i,1..T} (same row, any step), for modalities whose steps hold
  //               unrelated content (image rows, audio frames, text tokens).
  std::string cross_commit = "position";
};

struct Quantized {
  torch::Tensor st;       // ŝ = s + sg(e_k* − s), [.., D] (gradient flows to s)
  torch::Tensor codes;    // e_k* [.., D], no gradient
  torch::Tensor index;    // k* [..] int64
};

// Health of one modality's assignments in one batch.
struct CodeStats {
  double perplexity = 0;  // exp(−Σ p_k log p_k) over the batch's assignments
  int64_t used = 0;       // distinct codes assigned in the batch
};

class SharedCodebookImpl : public torch::nn::Module {
 public:
  explicit SharedCodebookImpl(CodebookOptions o);
  CodebookOptions options;

  // k* for every vector of x [.., D] -> [..] int64 (squared Euclidean distance, ties to the lowest k).
  torch::Tensor assign(const torch::Tensor& x) const;
  // Nearest code + straight-through of x [.., D].
  Quantized quantize(const torch::Tensor& x) const;
  // Cross-modal commitment of semantic features s[m] [B, T, D] against every modality's codes q[m] [B, T, D].
  torch::Tensor commitment(const std::vector<torch::Tensor>& s, const std::vector<torch::Tensor>& q) const;
  // One EMA step per modality (in order) from features s[m] [B, T, D] (detached inside) and their
  // assignments index[m] [B, T]; then the dead-code reset when enabled. Training only.
  void update(const std::vector<torch::Tensor>& s, const std::vector<torch::Tensor>& index);

  // Live codes: assigned (or reset) within the last `reset_after` updates (or `recent` when reset is off).
  int64_t live_codes() const;
  // Codes re-initialized by the last update.
  int64_t last_resets() const { return last_resets_; }

  const torch::Tensor& embedding() const { return embedding_; }
  const torch::Tensor& ema_count() const { return ema_count_; }
  const torch::Tensor& ema_sum() const { return ema_sum_; }

 private:
  // The EMA target of modality a: its own features mixed with the others' (MM-EMA) or its own.
  torch::Tensor teacher_features(const std::vector<torch::Tensor>& s, size_t a) const;
  torch::Tensor embedding_, ema_count_, ema_sum_, last_used_, updates_;
  int64_t last_resets_ = 0;
};
TORCH_MODULE(SharedCodebook);

// Batch statistics of assignments index [..] into K codes.
CodeStats code_stats(const torch::Tensor& index, int64_t codes);
// Per row of a [B, T] and b [B, T]: whether the most frequent code of a's row equals b's (ties to the
// lowest code); returns the share of rows that agree.
double code_agreement(const torch::Tensor& a, const torch::Tensor& b, int64_t codes);

}  // namespace braid::objectives
