// braid/objectives/masking.cpp — BERT-style token masking, MLM, patch masking, MRFR and MRC.
#include "braid/objectives/masking.h"

#include <torch/torch.h>

#include "braid/objectives/check.h"

namespace braid::objectives {
namespace {

// Mean over the selected positions of `per_pos` [B, N]; 0 (attached) when nothing is selected.
torch::Tensor masked_mean(const torch::Tensor& per_pos, const torch::Tensor& sel) {
  auto m = sel.to(per_pos.scalar_type());
  return (per_pos * m).sum() / m.sum().clamp_min(1.0);
}

// CE per position of logits [..., K] against ids [...] (ids outside [0, K) must be excluded by the caller).
torch::Tensor ce_per_position(const torch::Tensor& logits, const torch::Tensor& ids) {
  auto logp = torch::log_softmax(logits, -1);
  return -logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1);
}

}  // namespace

MaskedTokens mask_tokens(const torch::Tensor& ids, int64_t mask_id, int64_t vocab, double p) {
  check_dim(ids, 2, "mask_tokens", "ids");
  BRAID_INPUT_CHECK(ids.scalar_type() == torch::kLong, "mask_tokens: ids must be int64, got {}",
                    std::string(c10::toString(ids.scalar_type())));
  BRAID_INPUT_CHECK(p > 0 && p <= 1, "mask_tokens: p must be in (0, 1], got {}", p);
  BRAID_INPUT_CHECK(vocab > 1, "mask_tokens: vocab must be > 1, got {}", vocab);
  BRAID_INPUT_CHECK(mask_id > 0, "mask_tokens: mask_id must be > 0 (0 is padding), got {}", mask_id);
  torch::NoGradGuard no_grad;
  const auto b = ids.size(0), l = ids.size(1);
  auto fopt = torch::TensorOptions().dtype(torch::kFloat).device(ids.device());
  auto nonpad = ids.ne(0);
  auto picked = torch::rand({b, l}, fopt).lt(p).logical_and_(nonpad);
  // A non-empty row with no pick: pick one of its non-pad positions uniformly.
  auto empty_row = picked.any(1).logical_not_().logical_and_(nonpad.any(1));
  auto pick_one = torch::rand({b, l}, fopt).masked_fill_(nonpad.logical_not(), -1.0).argmax(1);
  picked.scatter_(1, pick_one.unsqueeze(1), picked.gather(1, pick_one.unsqueeze(1)).logical_or(empty_row.unsqueeze(1)));
  auto r = torch::rand({b, l}, fopt);
  auto to_mask = picked.logical_and(r.lt(0.8));
  auto to_rand = picked.logical_and(r.ge(0.8)).logical_and_(r.lt(0.9));
  auto rand_ids = torch::randint(1, vocab, {b, l}, ids.options());
  MaskedTokens out;
  out.input = torch::where(to_rand, rand_ids, ids.masked_fill(to_mask, mask_id));
  out.targets = ids.masked_fill(picked.logical_not(), -100);
  return out;
}

torch::Tensor mlm_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  check_dim(logits, 3, "mlm_loss", "logits");
  check_dim(targets, 2, "mlm_loss", "targets");
  BRAID_INPUT_CHECK(logits.size(0) == targets.size(0) && logits.size(1) == targets.size(1),
                    "mlm_loss: logits {} must be [B, L, V] for targets {}", shape_str(logits), shape_str(targets));
  auto t = targets.to(torch::kLong);
  auto sel = t.ne(-100);
  const int64_t v = logits.size(2);
  BRAID_INPUT_CHECK(!t.masked_select(sel).lt(0).any().item<bool>() && !t.masked_select(sel).ge(v).any().item<bool>(),
                    "mlm_loss: targets must be in [0, {}) or -100 for logits {}", v, shape_str(logits));
  return masked_mean(ce_per_position(logits, t.masked_fill(sel.logical_not(), 0)), sel);
}

torch::Tensor mask_patches(int64_t B, int64_t N, double p) {
  BRAID_INPUT_CHECK(B >= 0 && N >= 1, "mask_patches: needs B >= 0 and N >= 1, got B {} N {}", B, N);
  BRAID_INPUT_CHECK(p > 0 && p <= 1, "mask_patches: p must be in (0, 1], got {}", p);
  auto m = torch::rand({B, N}).lt(p);
  auto empty_row = m.any(1).logical_not_();
  auto pick_one = torch::randint(0, N, {B}, torch::kLong);
  m.scatter_(1, pick_one.unsqueeze(1), m.gather(1, pick_one.unsqueeze(1)).logical_or(empty_row.unsqueeze(1)));
  return m;
}

torch::Tensor mrfr_loss(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& mask) {
  check_dim(pred, 3, "mrfr_loss", "pred");
  check_same(pred, target, "mrfr_loss", "pred", "target");
  BRAID_INPUT_CHECK(mask.defined() && mask.dim() == 2 && mask.size(0) == pred.size(0) && mask.size(1) == pred.size(1),
                    "mrfr_loss: mask {} must be [B, N] for pred {}", shape_str(mask), shape_str(pred));
  return masked_mean((pred - target).pow(2).mean(-1), mask.to(torch::kBool));
}

torch::Tensor mrc_loss(const torch::Tensor& logits, const torch::Tensor& target_ids, const torch::Tensor& mask) {
  check_dim(logits, 3, "mrc_loss", "logits");
  check_dim(target_ids, 2, "mrc_loss", "target_ids");
  BRAID_INPUT_CHECK(logits.size(0) == target_ids.size(0) && logits.size(1) == target_ids.size(1),
                    "mrc_loss: logits {} must be [B, N, K] for target_ids {}", shape_str(logits),
                    shape_str(target_ids));
  check_same(mask, target_ids, "mrc_loss", "mask", "target_ids");
  auto sel = mask.to(torch::kBool);
  auto t = target_ids.to(torch::kLong);
  const int64_t k = logits.size(2);
  auto picked = t.masked_select(sel);
  BRAID_INPUT_CHECK(!picked.lt(0).any().item<bool>() && !picked.ge(k).any().item<bool>(),
                    "mrc_loss: target_ids of masked patches must be in [0, {}) for logits {}", k, shape_str(logits));
  return masked_mean(ce_per_position(logits, t.masked_fill(sel.logical_not(), 0)), sel);
}

}  // namespace braid::objectives
