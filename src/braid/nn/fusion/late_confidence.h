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
//
// Shift (calibrate: shift): an expert can be sure and wrong on an input unlike anything it was
// trained on (an image style never seen), and no statistic of its held-in outputs shows that. The
// input's distance to the held-in ones does: after training, each expert keeps its encoder's
// features of the validation split (L2-normalized) and the distribution of their leave-one-out
// distances to their k-th nearest neighbour (`knn_distance`, k = shift_k). At test time a sample's
// k-NN distance d_m gives a tail share s_m = share of those reference distances >= d_m (a p-value
// of "as typical as held-in data") and a trust t_m = min(1, s_m / shift_alpha): 1 for all but
// the shift_alpha most atypical share of held-in inputs, falling to 0 beyond the farthest one;
// the weight becomes present_m · c_m^power · t_m (normalized as before; when every present expert
// has trust 0 the confidences alone decide).
#pragma once

#include <torch/types.h>

namespace braid::nn {

// c = 1 − H(softmax)/log K per expert: logp [B, M, K] log-probabilities (K ≥ 2) -> [B, M].
torch::Tensor expert_confidence(const torch::Tensor& logp);

// w [B, M]: present [B, M] (0/1) · c^power, normalized over the present experts of each row
// (a row with nothing present is all 0; present experts with c = 0 share equally).
// With `ranks` [M, Q] (each row expert m's validation confidences, sorted ascending) the
// confidence used is `confidence_rank(c, ranks)` instead of c.
// With `trust` [B, M] in [0, 1] (`shift_trust` per expert) each weight is also multiplied by it.
torch::Tensor confidence_weights(const torch::Tensor& logp, const torch::Tensor& present, double power,
                                 const torch::Tensor& ranks = {}, const torch::Tensor& trust = {});

// The fused log-probabilities [B, K] of the rule above. c10::Error naming the tensors when
// logp is not [B, M, K] with K ≥ 2, present not [B, M], or power < 0.
torch::Tensor confidence_fuse(const torch::Tensor& logp, const torch::Tensor& present, double power,
                              const torch::Tensor& ranks = {}, const torch::Tensor& trust = {});

// x [B, D], ref [N, D] -> [B]: the Euclidean distance of each L2-normalized row of x to its k-th
// nearest L2-normalized row of ref. leave_one_out: x is ref itself (B = N) and a row is not its
// own neighbour. c10::Error unless 1 <= k <= N (N - 1 leaving one out) and the widths agree.
torch::Tensor knn_distance(const torch::Tensor& x, const torch::Tensor& ref, int64_t k, bool leave_one_out = false);

// d [B] k-NN distances, quantiles [Q] the reference distances (ascending) -> [B] trust
// min(1, (share of quantiles >= d) / alpha). c10::Error unless alpha is in (0, 1].
torch::Tensor shift_trust(const torch::Tensor& d, const torch::Tensor& quantiles, double alpha);

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
