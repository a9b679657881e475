#include "braid/nn/pool.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace braid::nn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr uint8_t kDead = 4;  // the window's max was <= 0: relu's gradient is zero

// Output size of a kernel-2 stride-2 window along a dim of n (ceil mode: a last window of one element).
int64_t pooled(int64_t n, bool ceil) { return ceil ? (n + 1) / 2 : n / 2; }

// Planes [0, planes) on at::parallel_for, roughly 32 k input elements per task.
template <typename F>
void for_planes(int64_t planes, int64_t plane_size, const F& f) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, plane_size));
  at::parallel_for(0, planes, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) f(p);
  });
}

// Storage <-> compute type: float and double as they are; bfloat16 as its 16 bits (uint16_t), computed in
// float. A pooled value is one of the inputs, so storing it back into bfloat16 is exact (the top 16 bits of
// the float). Plain integer and float code, so that the compiler vectorizes the row loops.
template <typename S>
struct Acc {
  using type = S;
  static S load(S v) { return v; }
  static S store(S v) { return v; }
};
template <>
struct Acc<uint16_t> {
  using type = float;
  static float load(uint16_t v) {
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  static uint16_t store(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return static_cast<uint16_t>(bits >> 16);
  }
};
// The storage type of a scalar type: bfloat16 -> its bits.
template <typename T>
using storage_t = std::conditional_t<std::is_same_v<T, c10::BFloat16>, uint16_t, T>;

// Branch-free selection on a value's bits: mask is all ones (take x) or zero (take y).
template <typename F>
struct Select {
  using I = std::conditional_t<sizeof(F) == 4, uint32_t, uint64_t>;
  static I bits(F v) {
    I i;
    std::memcpy(&i, &v, sizeof i);
    return i;
  }
  static F pick(I mask, F x, F y) {
    const I i = (bits(x) & mask) | (bits(y) & ~mask);
    F v;
    std::memcpy(&v, &i, sizeof v);
    return v;
  }
  // all ones where ATen's scan moves to v: v is greater than the best so far, or NaN
  static I wins(F v, F best) { return static_cast<I>(-static_cast<I>((v > best) | (v != v))); }
};

// One output row: the windows over input rows r0 and r1 (kTwoRows false: r0 only, ceil mode's last row). The scan
// order and rule are ATen's max_pool2d: (r0, w0), (r0, w0+1), (r1, w0), (r1, w0+1), a later element wins
// when it is greater or NaN. Written without branches (masks on the bits): on real activations the
// comparisons are coin flips, and a mispredicted branch per element is what made ATen's scalar kernel slow.
template <typename S, bool kTwoRows>
void pool_row(const S* __restrict r0, const S* __restrict r1, int64_t W, int64_t OW, S* __restrict out,
              uint8_t* __restrict ix) {
  using A = Acc<S>;
  using acc_t = typename A::type;
  using Sel = Select<acc_t>;
  using I = typename Sel::I;
  // one window: values a, b (row 0), c, d (row 1; unused without kTwoRows or with has_b false)
  auto window = [](acc_t a, acc_t b, acc_t c, acc_t d, bool has_b, S* o, uint8_t* k_out) {
    acc_t m = a;
    I k = 0;
    if (has_b) {
      const I u = Sel::wins(b, m);
      m = Sel::pick(u, b, m);
      k = (k & ~u) | (I{1} & u);
    }
    if (kTwoRows) {
      I u = Sel::wins(c, m);
      m = Sel::pick(u, c, m);
      k = (k & ~u) | (I{2} & u);
      if (has_b) {
        u = Sel::wins(d, m);
        m = Sel::pick(u, d, m);
        k = (k & ~u) | (I{3} & u);
      }
    }
    // relu: threshold_backward passes the gradient where the output is not <= 0 (NaN passes)
    const I dead = static_cast<I>(-static_cast<I>(m <= acc_t(0)));
    *o = A::store(Sel::pick(dead, acc_t(0), m));
    *k_out = static_cast<uint8_t>((k & ~dead) | (I{kDead} & dead));
  };
  const int64_t full = W / 2;  // windows with two columns
  for (int64_t ow = 0; ow < full; ++ow) {
    const acc_t a = A::load(r0[2 * ow]), b = A::load(r0[2 * ow + 1]);
    const acc_t c = kTwoRows ? A::load(r1[2 * ow]) : a, d = kTwoRows ? A::load(r1[2 * ow + 1]) : a;
    window(a, b, c, d, true, out + ow, ix + ow);
  }
  if (full < OW) {  // ceil mode, odd W: a last window of one column
    const acc_t a = A::load(r0[W - 1]);
    window(a, a, kTwoRows ? A::load(r1[W - 1]) : a, a, false, out + full, ix + full);
  }
}

// The input gradient of one output row's windows: every element of rows r0 and r1 (kTwoRows) that a window
// covers is written, the arg-max with the output gradient and the rest with zero. U is an unsigned integer
// as wide as the scalar: the gradient's bits are copied under a mask (no branch, vectorizable).
template <typename U, bool kTwoRows>
void unpool_row(const U* __restrict g, const uint8_t* __restrict ix, int64_t W, int64_t OW, U* __restrict r0,
                U* __restrict r1) {
  auto pick = [](U v, uint8_t k, uint8_t at) { return static_cast<U>(v & static_cast<U>(-static_cast<U>(k == at))); };
  const int64_t full = W / 2;
  for (int64_t ow = 0; ow < full; ++ow) {
    const uint8_t k = ix[ow];
    const U v = g[ow];
    r0[2 * ow] = pick(v, k, 0);
    r0[2 * ow + 1] = pick(v, k, 1);
    if (kTwoRows) {
      r1[2 * ow] = pick(v, k, 2);
      r1[2 * ow + 1] = pick(v, k, 3);
    }
  }
  if (full < OW) {  // ceil mode, odd W: the one-column window
    r0[W - 1] = pick(g[full], ix[full], 0);
    if (kTwoRows) r1[W - 1] = pick(g[full], ix[full], 2);
  } else if (2 * full < W) {  // floor mode, odd W: the last column is in no window
    r0[W - 1] = 0;
    if (kTwoRows) r1[W - 1] = 0;
  }
}

// The unsigned integer type as wide as T.
template <typename T>
using bits_t = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;

struct ReluMaxPoolFn : public torch::autograd::Function<ReluMaxPoolFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, bool ceil) {
    TORCH_CHECK(relu_max_pool2x2_applies(x), "relu_max_pool2x2: a contiguous [N, C, H >= 2, W >= 2] CPU tensor of "
                "float, double or bfloat16 expected, got ", x.scalar_type(), " ", x.sizes(), " on ", x.device());
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t OH = pooled(H, ceil), OW = pooled(W, ceil);
    auto y = at::empty({N, C, OH, OW}, x.options());
    auto idx = at::empty({N, C, OH, OW}, x.options().dtype(at::kByte));
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "relu_max_pool2x2", [&] {
      using S = storage_t<scalar_t>;
      const S* px = reinterpret_cast<const S*>(x.data_ptr<scalar_t>());
      S* py = reinterpret_cast<S*>(y.data_ptr<scalar_t>());
      uint8_t* pi = idx.data_ptr<uint8_t>();
      for_planes(N * C, H * W, [&](int64_t p) {
        for (int64_t oh = 0; oh < OH; ++oh) {
          const S* r0 = px + p * H * W + 2 * oh * W;
          S* out = py + (p * OH + oh) * OW;
          uint8_t* ix = pi + (p * OH + oh) * OW;
          if (2 * oh + 1 < H) pool_row<S, true>(r0, r0 + W, W, OW, out, ix);
          else pool_row<S, false>(r0, nullptr, W, OW, out, ix);  // ceil mode, odd H: a one-row window
        }
      });
    });
    ctx->save_for_backward({idx});
    ctx->saved_data["H"] = H;
    ctx->saved_data["W"] = W;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    const auto idx = ctx->get_saved_variables()[0];
    const int64_t H = ctx->saved_data["H"].toInt(), W = ctx->saved_data["W"].toInt();
    const int64_t N = idx.size(0), C = idx.size(1), OH = idx.size(2), OW = idx.size(3);
    auto go = grads[0].contiguous();
    auto gx = at::empty({N, C, H, W}, go.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, go.scalar_type(), "relu_max_pool2x2_backward", [&] {
      using U = bits_t<scalar_t>;
      const U* pg = reinterpret_cast<const U*>(go.data_ptr<scalar_t>());
      const uint8_t* pi = idx.data_ptr<uint8_t>();
      U* px = reinterpret_cast<U*>(gx.data_ptr<scalar_t>());
      for_planes(N * C, H * W, [&](int64_t p) {
        U* gi = px + p * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
          U* r0 = gi + 2 * oh * W;
          const U* g = pg + (p * OH + oh) * OW;
          const uint8_t* ix = pi + (p * OH + oh) * OW;
          if (2 * oh + 1 < H) unpool_row<U, true>(g, ix, W, OW, r0, r0 + W);
          else unpool_row<U, false>(g, ix, W, OW, r0, nullptr);
        }
        if (2 * OH < H) std::fill(gi + (H - 1) * W, gi + H * W, U(0));  // floor mode, odd H: the last row
      });
    });
    return {gx, at::Tensor()};
  }
};

}  // namespace

bool relu_max_pool2x2_applies(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return x.defined() && x.device().is_cpu() && x.dim() == 4 && x.size(2) >= 2 && x.size(3) >= 2 &&
         (t == at::kFloat || t == at::kDouble || t == at::kBFloat16) && x.is_contiguous();
}

at::Tensor relu_max_pool2x2(const at::Tensor& x, bool ceil) { return ReluMaxPoolFn::apply(x, ceil); }

}  // namespace braid::nn
