// braid/objectives/check.h — shape checks shared by the objectives: one-line InputErrors naming the shapes.
#pragma once

#include <torch/types.h>

#include <string>

#include "braid/core/error.h"

namespace braid::objectives {

// "[4, 8]" (or "undefined").
inline std::string shape_str(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// `what` must be defined with `dim` dimensions.
inline void check_dim(const torch::Tensor& t, int64_t dim, const char* fn, const char* what) {
  BRAID_INPUT_CHECK(t.defined() && t.dim() == dim, "{}: {} must have {} dimensions, got shape {}", fn, what, dim,
                    shape_str(t));
}

// A scalar tensor (one element).
inline void check_scalar(const torch::Tensor& t, const char* fn, const char* what) {
  BRAID_INPUT_CHECK(t.defined() && t.numel() == 1, "{}: {} must be a scalar tensor, got shape {}", fn, what,
                    shape_str(t));
}

// Two tensors of the same shape.
inline void check_same(const torch::Tensor& a, const torch::Tensor& b, const char* fn, const char* na,
                       const char* nb) {
  BRAID_INPUT_CHECK(a.defined() && b.defined() && a.sizes() == b.sizes(), "{}: {} {} and {} {} must have the same shape",
                    fn, na, shape_str(a), nb, shape_str(b));
}

}  // namespace braid::objectives
