#include "braid/objectives/gather.h"

#include <torch/torch.h>

#include <memory>
#include <utility>

#include "braid/core/error.h"

namespace braid::objectives {
namespace {

struct Active {
  RowGather gather;
  int world = 1;
};
thread_local std::unique_ptr<Active> active;

// Identity forward; backward multiplies the gradient by `factor`.
struct ScaleGrad : public torch::autograd::Function<ScaleGrad> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double factor) {
    ctx->saved_data["factor"] = factor;
    return x.view_as(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    return {g[0] * ctx->saved_data["factor"].toDouble(), torch::Tensor()};
  }
};

}  // namespace

GatherScope::GatherScope(RowGather gather, int world) {
  TORCH_CHECK(active == nullptr, "GatherScope: scopes do not nest");
  active = std::make_unique<Active>(Active{std::move(gather), world});
}

GatherScope::~GatherScope() { active.reset(); }

bool gathering() { return active != nullptr; }

torch::Tensor gather_rows(const torch::Tensor& x) {
  if (!active) return x;
  BRAID_INPUT_CHECK(x.dim() == 2, "gather_rows: expected [rows, D], got {} dimensions", x.dim());
  auto g = active->gather(x.detach());
  const int64_t b = x.size(0);
  TORCH_CHECK(g.rows.dim() == 2 && g.offset >= 0 && g.offset + b <= g.rows.size(0),
              "gather_rows: the collective returned rows that do not hold this rank's");
  auto all = g.rows.to(x.device(), x.scalar_type());
  auto mine = x.requires_grad() ? ScaleGrad::apply(x, static_cast<double>(active->world)) : x;
  return torch::cat({all.slice(0, 0, g.offset), mine, all.slice(0, g.offset + b)}, 0);
}

std::pair<torch::Tensor, torch::Tensor> gather_pairs(const torch::Tensor& u, const torch::Tensor& v) {
  if (!active) return {u, v};
  auto g = gather_rows(torch::cat({u, v}, 1));
  return {g.slice(1, 0, u.size(1)), g.slice(1, u.size(1))};
}

}  // namespace braid::objectives
