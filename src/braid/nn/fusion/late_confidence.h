// braid/nn/fusion/late_confidence.h — confidence-weighted decision fusion (fusion_classifier's
// `late_conf`): each modality's expert gives class log-probabilities; each expert's vote is
// weighted per sample by how sure it is, so an expert that is unsure on a sample (an input out of
// its training distribution, a noisy one) gives way to a sure one, and an absent one has no say.
//
//   c_m = 1 − H(p_m) / log K                    confidence of expert m on this sample, in [0, 1]
//   w_m = present_m · c_m^power / Σ_present c^power   (an absent expert: w_m = 0)
//   log p = log_softmax(Σ_m w_m · log p_m)       a weighted product of experts
//
// power 0 is the plain (geometric-mean) product of experts; larger powers let the surest expert
// dominate more. Nothing present gives the uniform distribution. The weights are a decision
// rule, not learned: `confidence_fuse` computes them from detached log-probabilities, so training
// through it moves the experts, never the weights' own inputs. Pure functions, no parameters.
//
// Calibration (fusion: {name: late_conf, calibrate: temperature}): an expert trained on features
// it overfits is surer than it is right, and its confidence c_m says so too loudly. Temperature
// scaling (Guo et al. 2017) divides expert m's logits by one T_m > 0 fitted after training on the
// validation split (`fit_temperature`: the T minimizing the mean NLL of softmax(z / T)); it never
// changes which class the expert prefers, only how sure it is, so an overconfident expert
// (T_m > 1) gives way more often in the product. `calibrate: rank` instead replaces c_m by its rank
// among expert m's own validation confidences (`confidence_rank`: the share of them <= c_m), so an
// expert is weighed by how sure it is relative to how sure it usually is on held-in data.
#pragma once

#include <torch/types.h>

namespace braid::nn {

// c = 1 − H(softmax)/log K per expert: logp [B, M, K] log-probabilities (K ≥ 2) -> [B, M].
torch::Tensor expert_confidence(const torch::Tensor& logp);

// w [B, M]: present [B, M] (0/1) · c^power, normalized over the present experts of each row
// (a row with nothing present is all 0; present experts with c = 0 share equally).
// With `ranks` [M, Q] (each row expert m's validation confidences, sorted ascending) the
// confidence used is `confidence_rank(c, ranks)` instead of c.
torch::Tensor confidence_weights(const torch::Tensor& logp, const torch::Tensor& present, double power,
                                 const torch::Tensor& ranks = {});

// The fused log-probabilities [B, K] of the rule above. c10::Error naming the tensors when
// logp is not [B, M, K] with K ≥ 2, present not [B, M], or power < 0.
torch::Tensor confidence_fuse(const torch::Tensor& logp, const torch::Tensor& present, double power,
                              const torch::Tensor& ranks = {});

// c [B, M] -> the share of each expert's reference confidences `ranks` [M, Q] (sorted ascending
// per row) that are <= c, in [0, 1].
torch::Tensor confidence_rank(const torch::Tensor& c, const torch::Tensor& ranks);

// Bounds of a fitted temperature: a perfectly separable validation set would otherwise drive T to 0.
constexpr double kMinTemperature = 0.05, kMaxTemperature = 20.0;

// Mean NLL of softmax(logits / temperature) against labels: logits [N, K], labels [N] int64.
double temperature_nll(const torch::Tensor& logits, const torch::Tensor& labels, double temperature);

// The temperature in [kMinTemperature, kMaxTemperature] that minimizes `temperature_nll` (golden-section
// search over log T; the NLL is convex in 1/T). 1 when there are no rows. c10::Error when logits is
// not [N, K] with K >= 2 or labels not [N].
double fit_temperature(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace braid::nn
