// braid/objectives/contrastive.h — contrastive alignment losses between two batches of embeddings.
//
// All inputs are float32, batch-first; row i of one side is the positive of row i of the other.
// `logit_scale` and `bias` are scalar learnable tensors owned by the model (initial values in
// docs/alignment.md: CLIP t = ln(1/0.07); SigLIP t = ln 10, b = −10). Shape mismatches throw a
// one-line braid::InputError naming the shapes.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace braid::objectives {

// CLIP symmetric loss. u, v [B, D] (L2-normalized by the caller); s = min(exp(logit_scale), 100);
// L = s·U Vᵀ; loss = ½[CE(L, diag) + CE(Lᵀ, diag)], each CE with label smoothing ε (torch's
// definition: (1−ε)·NLL + ε·mean over classes of −log p). chunk > 0 computes L in row blocks of
// `chunk` rows with a custom backward that recomputes the blocks: same value and gradients (to
// float rounding), memory O(chunk·B) instead of O(B²). No double backward on the chunked path.
torch::Tensor clip_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& logit_scale,
                        double label_smoothing = 0.0, int64_t chunk = 0);

// SigLIP sigmoid loss: L_ij = exp(t)·u_i·v_j + b, z_ij = +1 if i = j else −1;
// loss = −(1/B) Σ_ij log σ(z_ij L_ij). u, v [B, D]; t = logit_scale and b = bias scalars.
torch::Tensor siglip_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& logit_scale,
                          const torch::Tensor& bias);

// InfoNCE: logits = q kᵀ / temperature (q [B, D], k [B, D], not normalized here), positives on the
// diagonal; mean CE over the rows of q. Used by CPC.
torch::Tensor info_nce(const torch::Tensor& q, const torch::Tensor& k, double temperature);

}  // namespace braid::objectives
