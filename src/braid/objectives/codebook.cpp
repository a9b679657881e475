// braid/objectives/codebook.cpp — shared VQ codebook with (MM-)EMA updates, commitment, reset, stats.
#include "braid/objectives/codebook.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace braid::objectives {

SharedCodebookImpl::SharedCodebookImpl(CodebookOptions o) : options(std::move(o)) {
  TORCH_CHECK(options.codes > 0 && options.dim > 0, "codebook: codes and dim must be positive");
  TORCH_CHECK(options.reset_from == "codes" || options.reset_from == "features",
              "codebook: reset_from must be codes or features");
  TORCH_CHECK(options.cross_commit == "position" || options.cross_commit == "nearest",
              "codebook: cross_commit must be position or nearest");
  TORCH_CHECK(options.reset_from == "codes" || options.reset_after <= 0 || options.recent < options.reset_after,
              "codebook: with reset_from features, recent (the grace of a reset code) must be < reset_after");
  const double r = 1.0 / static_cast<double>(options.codes);
  embedding_ = register_buffer("embedding", torch::empty({options.codes, options.dim}).uniform_(-r, r));
  ema_count_ = register_buffer("ema_count", torch::zeros({options.codes}));
  ema_sum_ = register_buffer("ema_sum", embedding_.clone());
  last_used_ = register_buffer("last_used", torch::zeros({options.codes}, torch::kLong));
  updates_ = register_buffer("updates", torch::zeros({1}, torch::kLong));
}

torch::Tensor SharedCodebookImpl::assign(const torch::Tensor& x) const {
  auto flat = x.detach().reshape({-1, options.dim});
  // ‖x‖² − 2 x·e + ‖e‖²
  auto d = flat.pow(2).sum(1, true) - 2 * flat.matmul(embedding_.t()) + embedding_.pow(2).sum(1).unsqueeze(0);
  auto sizes = x.sizes().vec();
  sizes.pop_back();
  return d.argmin(1).reshape(sizes);
}

Quantized SharedCodebookImpl::quantize(const torch::Tensor& x) const {
  Quantized q;
  q.index = assign(x);
  q.codes = embedding_.index_select(0, q.index.reshape(-1)).reshape(x.sizes()).clone();
  q.st = x + (q.codes - x).detach();
  return q;
}

torch::Tensor SharedCodebookImpl::commitment(const std::vector<torch::Tensor>& s,
                                             const std::vector<torch::Tensor>& q) const {
  TORCH_CHECK(s.size() == q.size() && !s.empty(), "commitment: one code tensor per modality expected");
  const size_t M = s.size();
  auto loss = torch::zeros({}, s[0].options());
  for (size_t a = 0; a < M; ++a)
    for (size_t b = 0; b < M; ++b) {
      double w = a == b ? 2 * options.beta : options.beta / static_cast<double>(M - 1);
      if (a == b || options.cross_commit == "position") {
        loss = loss + w * torch::mse_loss(s[a], q[b].detach());
      } else {
        TORCH_CHECK(s[a].dim() == 3 && q[b].dim() == 3 && s[a].size(0) == q[b].size(0),
                    "commitment (nearest): [B, T, D] per modality with the same rows expected, got ", s[a].sizes(),
                    " and ", q[b].sizes());
        // [B, T, 1, D] − [B, 1, T', D] -> squared distances [B, T, T'], the nearest of b's steps per (i, t)
        auto d2 = (s[a].unsqueeze(2) - q[b].detach().unsqueeze(1)).pow(2).sum(-1);
        loss = loss + w * std::get<0>(d2.min(-1)).mean() / static_cast<double>(s[a].size(-1));
      }
    }
  return loss;
}

torch::Tensor SharedCodebookImpl::teacher_features(const std::vector<torch::Tensor>& s, size_t a) const {
  const size_t M = s.size();
  if (!options.mm_ema || M < 2) return s[a];
  auto t = 0.5 * s[a];
  const double w = 0.5 / static_cast<double>(M - 1);
  for (size_t b = 0; b < M; ++b) {
    if (b == a) continue;
    if (options.teacher == "attention") {
      auto att = torch::softmax(s[a].matmul(s[b].transpose(1, 2)) / std::sqrt(static_cast<double>(options.dim)), -1);
      t = t + w * att.matmul(s[b]);
    } else {
      t = t + w * s[b];
    }
  }
  return t;
}

namespace {
// every modality's vectors [N, D] in one matrix
torch::Tensor all_vectors(const std::vector<torch::Tensor>& s, int64_t dim) {
  std::vector<torch::Tensor> flat;
  for (const auto& x : s) flat.push_back(x.reshape({-1, dim}));
  return torch::cat(flat);
}
}  // namespace

void SharedCodebookImpl::update(const std::vector<torch::Tensor>& s_in, const std::vector<torch::Tensor>& index) {
  torch::NoGradGuard ng;
  TORCH_CHECK(s_in.size() == index.size() && !s_in.empty(), "codebook update: one index tensor per modality expected");
  std::vector<torch::Tensor> s;
  for (const auto& x : s_in) s.push_back(x.detach());
  const int64_t K = options.codes;
  const double g = options.decay, eps = options.epsilon;
  const int64_t step = updates_.item<int64_t>() + 1;
  const bool from_features = options.reset_from == "features";
  std::vector<torch::Tensor> fresh_index;  // "features": the first update seeds every code from the vectors
  if (from_features && step == 1) {
    auto pool = all_vectors(s, options.dim);
    if (pool.size(0) > 0) {
      auto pick = torch::randint(pool.size(0), {K}, torch::kLong).to(pool.device());
      embedding_.copy_(pool.index_select(0, pick));
      ema_count_.fill_(static_cast<double>(pool.size(0)) / static_cast<double>(K));
      ema_sum_.copy_(embedding_ * ema_count_.unsqueeze(1));
      for (const auto& x : s) fresh_index.push_back(assign(x));
    }
  }
  for (size_t a = 0; a < s.size(); ++a) {
    auto idx = (fresh_index.empty() ? index[a] : fresh_index[a]).reshape(-1);
    auto enc = torch::one_hot(idx, K).to(s[a].dtype());                  // [N, K]
    auto target = teacher_features(s, a).reshape({-1, options.dim});     // [N, D]
    ema_count_.mul_(g).add_(enc.sum(0), 1 - g);
    auto n = ema_count_.sum();
    auto smoothed = (ema_count_ + eps) / (n + K * eps) * n;
    ema_sum_.mul_(g).add_(enc.t().matmul(target), 1 - g);
    embedding_.copy_(ema_sum_ / smoothed.unsqueeze(1));
    last_used_.index_fill_(0, idx, step);
  }
  updates_.fill_(step);
  last_resets_ = 0;
  if (options.reset_after <= 0) return;
  auto age = step - last_used_;
  auto dead = (age >= options.reset_after).nonzero().reshape(-1);
  if (dead.numel() == 0) return;
  torch::Tensor fresh;
  // random draws on the CPU generator (the same stream on every device), then moved
  if (from_features) {
    auto pool = all_vectors(s, options.dim);
    if (pool.size(0) == 0) return;
    auto pick = torch::randint(pool.size(0), {dead.numel()}, torch::kLong).to(pool.device());
    fresh = pool.index_select(0, pick).to(embedding_.dtype());
  } else {
    auto recent = (age < options.recent).nonzero().reshape(-1);
    if (recent.numel() == 0) return;
    auto pick = recent.index_select(0, torch::randint(recent.numel(), {dead.numel()}, torch::kLong).to(recent.device()));
    const double r = 1.0 / 1024.0;
    fresh = embedding_.index_select(0, pick) +
            torch::empty({dead.numel(), options.dim}).uniform_(-r, r).to(embedding_.device());
  }
  embedding_.index_copy_(0, dead, fresh);
  auto n = ema_count_.sum();
  auto smoothed = ((ema_count_ + eps) / (n + K * eps) * n).index_select(0, dead);
  ema_sum_.index_copy_(0, dead, fresh * smoothed.unsqueeze(1));
  // "features": `recent` updates of grace before the next reset; not live until assigned (live_codes)
  last_used_.index_fill_(0, dead, from_features ? step - options.reset_after + std::min(options.recent, options.reset_after)
                                                : step);
  last_resets_ = dead.numel();
}

int64_t SharedCodebookImpl::live_codes() const {
  const int64_t window = options.reset_after > 0 ? options.reset_after : options.recent;
  const int64_t step = updates_.item<int64_t>();
  if (step == 0) return 0;
  auto age = step - last_used_;
  auto live = (age < window) & (last_used_ > 0);
  // "features": a reset code sits at age reset_after - grace until an assignment renews it
  if (options.reset_from == "features" && options.reset_after > 0)
    live = live & (age < options.reset_after - std::min(options.recent, options.reset_after));
  return live.sum().item<int64_t>();
}

CodeStats code_stats(const torch::Tensor& index, int64_t codes) {
  CodeStats st;
  auto flat = index.reshape(-1);
  if (flat.numel() == 0) return st;
  auto counts = torch::bincount(flat, {}, codes).to(torch::kDouble);
  auto p = counts / counts.sum();
  auto nz = p.index({p > 0});
  st.perplexity = std::exp(-(nz * nz.log()).sum().item<double>());
  st.used = nz.numel();
  return st;
}

namespace {
torch::Tensor row_modes(const torch::Tensor& x, int64_t codes) {
  auto oh = torch::one_hot(x, codes).sum(1);  // [B, K] counts per row
  return oh.argmax(1);                        // first maximum: lowest code among ties
}
}  // namespace

double code_agreement(const torch::Tensor& a, const torch::Tensor& b, int64_t codes) {
  if (a.size(0) == 0) return 0.0;
  return (row_modes(a, codes) == row_modes(b, codes)).to(torch::kDouble).mean().item<double>();
}

}  // namespace braid::objectives
