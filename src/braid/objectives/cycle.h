// braid/objectives/cycle.h — cycle-consistency between two modality embeddings.
#pragma once

#include <torch/types.h>

namespace braid::objectives {

// a [B, da], b [B, db] and their translations a2b = g_{a→b}(a) (like b), b2a (like a),
// a2b2a = g_{b→a}(a2b) (like a), b2a2b (like b). loss = MSE(a2b, b) + MSE(a2b2a, a) + MSE(b2a, a)
// + MSE(b2a2b, b), each the mean of squared differences over all elements. Pass `.detach()` targets
// to stop gradients into the encoders. Mismatched shapes throw a one-line braid::InputError.
torch::Tensor cycle_loss(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& a2b,
                         const torch::Tensor& b2a, const torch::Tensor& a2b2a, const torch::Tensor& b2a2b);

}  // namespace braid::objectives
