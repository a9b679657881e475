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

// Units of work [0, units) on at::parallel_for, roughly 32 k input elements per task.
template <typename F>
void for_units(int64_t units, int64_t unit_size, const F& f) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, unit_size));
  at::parallel_for(0, units, grain, [&](int64_t p0, int64_t p1) {
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

// One window: values a, b (row 0), c, d (row 1; unused without kTwoRows, b and d unused without has_b: a
// one-column window). The scan order and rule are ATen's max_pool2d: (row 0, w0), (row 0, w0+1), (row 1, w0),
// (row 1, w0+1), a later element wins when it is greater or NaN. Written without branches (masks on the
// bits): on real activations the comparisons are coin flips, and a mispredicted branch per element is what
// made ATen's scalar kernel slow.
template <typename S, bool kTwoRows>
inline void pool_window(typename Acc<S>::type a, typename Acc<S>::type b, typename Acc<S>::type c,
                        typename Acc<S>::type d, bool has_b, S* o, uint8_t* k_out) {
  using acc_t = typename Acc<S>::type;
  using Sel = Select<acc_t>;
  using I = typename Sel::I;
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
  *o = Acc<S>::store(Sel::pick(dead, acc_t(0), m));
  *k_out = static_cast<uint8_t>((k & ~dead) | (I{kDead} & dead));
}

// One output row over input rows r0 and r1 (kTwoRows false: r0 only, ceil mode's last row). `C` is the
// distance between neighbouring columns: 1 in NCHW (one plane's row), the channel count in channels-last
// (the row of every channel: the inner loop runs over the channels, contiguous). kUnitC: C is 1 (NCHW), known
// at compile time, so that the loop over the windows is the one the compiler vectorizes.
template <typename S, bool kTwoRows, bool kUnitC = false>
void pool_row(const S* __restrict r0, const S* __restrict r1, int64_t W, int64_t OW, int64_t C_, S* __restrict out,
              uint8_t* __restrict ix) {
  using A = Acc<S>;
  const int64_t C = kUnitC ? 1 : C_;
  const int64_t full = W / 2;  // windows with two columns
  for (int64_t ow = 0; ow < full; ++ow) {
    const int64_t w0 = 2 * ow * C, w1 = w0 + C;
    for (int64_t ch = 0; ch < C; ++ch) {
      const auto a = A::load(r0[w0 + ch]);
      pool_window<S, kTwoRows>(a, A::load(r0[w1 + ch]), kTwoRows ? A::load(r1[w0 + ch]) : a,
                               kTwoRows ? A::load(r1[w1 + ch]) : a, true, out + ow * C + ch, ix + ow * C + ch);
    }
  }
  if (full < OW) {  // ceil mode, odd W: a last window of one column
    const int64_t w0 = (W - 1) * C;
    for (int64_t ch = 0; ch < C; ++ch) {
      const auto a = A::load(r0[w0 + ch]);
      pool_window<S, kTwoRows>(a, a, kTwoRows ? A::load(r1[w0 + ch]) : a, a, false, out + full * C + ch,
                               ix + full * C + ch);
    }
  }
}

// The input gradient of one output row's windows (layout and `C` as in pool_row): every element of rows r0
// and r1 (kTwoRows) that a window covers is written, the arg-max with the output gradient and the rest with
// zero. U is an unsigned integer as wide as the scalar: the gradient's bits are copied under a mask.
template <typename U, bool kTwoRows, bool kUnitC = false>
void unpool_row(const U* __restrict g, const uint8_t* __restrict ix, int64_t W, int64_t OW, int64_t C_,
                U* __restrict r0, U* __restrict r1) {
  const int64_t C = kUnitC ? 1 : C_;
  auto pick = [](U v, uint8_t k, uint8_t at) { return static_cast<U>(v & static_cast<U>(-static_cast<U>(k == at))); };
  const int64_t full = W / 2;
  for (int64_t ow = 0; ow < full; ++ow) {
    const int64_t w0 = 2 * ow * C, w1 = w0 + C;
    for (int64_t ch = 0; ch < C; ++ch) {
      const uint8_t k = ix[ow * C + ch];
      const U v = g[ow * C + ch];
      r0[w0 + ch] = pick(v, k, 0);
      r0[w1 + ch] = pick(v, k, 1);
      if (kTwoRows) {
        r1[w0 + ch] = pick(v, k, 2);
        r1[w1 + ch] = pick(v, k, 3);
      }
    }
  }
  const int64_t w0 = (W - 1) * C;
  if (full < OW) {  // ceil mode, odd W: the one-column window
    for (int64_t ch = 0; ch < C; ++ch) {
      r0[w0 + ch] = pick(g[full * C + ch], ix[full * C + ch], 0);
      if (kTwoRows) r1[w0 + ch] = pick(g[full * C + ch], ix[full * C + ch], 2);
    }
  } else if (2 * full < W) {  // floor mode, odd W: the last column is in no window
    std::fill(r0 + w0, r0 + w0 + C, U(0));
    if (kTwoRows) std::fill(r1 + w0, r1 + w0 + C, U(0));
  }
}

// The unsigned integer type as wide as T.
template <typename T>
using bits_t = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;

struct ReluMaxPoolFn : public torch::autograd::Function<ReluMaxPoolFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, bool ceil) {
    TORCH_CHECK(relu_max_pool2x2_applies(x), "relu_max_pool2x2: a [N, C, H >= 2, W >= 2] CPU tensor (NCHW or "
                "channels-last contiguous) of "
                "float, double or bfloat16 expected, got ", x.scalar_type(), " ", x.sizes(), " on ", x.device());
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t OH = pooled(H, ceil), OW = pooled(W, ceil);
    // NCHW: a unit of work is one plane's output row (columns 1 apart); channels-last: one image's output
    // row of every channel (columns C apart, the channels inside)
    const bool cl = !x.is_contiguous();
    const int64_t units = cl ? N * OH : N * C * OH, stride = cl ? C : 1;
    auto y = at::empty({N, C, OH, OW}, x.options().memory_format(cl ? at::MemoryFormat::ChannelsLast
                                                                    : at::MemoryFormat::Contiguous));
    auto idx = at::empty({units, OW * stride}, x.options().dtype(at::kByte));
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "relu_max_pool2x2", [&] {
      using S = storage_t<scalar_t>;
      const S* px = reinterpret_cast<const S*>(x.data_ptr<scalar_t>());
      S* py = reinterpret_cast<S*>(y.data_ptr<scalar_t>());
      uint8_t* pi = idx.data_ptr<uint8_t>();
      for_units(units, 2 * W * stride, [&](int64_t u) {
        const int64_t img = u / OH, oh = u % OH;  // img: the plane (NCHW) or the image (channels-last)
        const S* r0 = px + (img * H + 2 * oh) * W * stride;
        S* out = py + u * OW * stride;
        uint8_t* ix = pi + u * OW * stride;
        if (2 * oh + 1 < H && stride == 1) pool_row<S, true, true>(r0, r0 + W, W, OW, 1, out, ix);
        else if (2 * oh + 1 < H) pool_row<S, true>(r0, r0 + W * stride, W, OW, stride, out, ix);
        else pool_row<S, false>(r0, nullptr, W, OW, stride, out, ix);  // ceil mode, odd H: a one-row window
      });
    });
    ctx->save_for_backward({idx});
    ctx->saved_data["shape"] = std::vector<int64_t>{N, C, H, W, OH, OW};
    ctx->saved_data["cl"] = cl;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor()};
    const auto idx = ctx->get_saved_variables()[0];
    const auto shape = ctx->saved_data["shape"].toIntVector();
    const bool cl = ctx->saved_data["cl"].toBool();
    const int64_t N = shape[0], C = shape[1], H = shape[2], W = shape[3], OH = shape[4], OW = shape[5];
    const int64_t units = cl ? N * OH : N * C * OH, stride = cl ? C : 1;
    const auto format = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    auto go = grads[0].contiguous(format);
    auto gx = at::empty({N, C, H, W}, go.options().memory_format(format));
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, go.scalar_type(), "relu_max_pool2x2_backward", [&] {
      using U = bits_t<scalar_t>;
      const U* pg = reinterpret_cast<const U*>(go.data_ptr<scalar_t>());
      const uint8_t* pi = idx.data_ptr<uint8_t>();
      U* px = reinterpret_cast<U*>(gx.data_ptr<scalar_t>());
      for_units(units, 2 * W * stride, [&](int64_t u) {
        const int64_t img = u / OH, oh = u % OH;
        U* r0 = px + (img * H + 2 * oh) * W * stride;
        const U* g = pg + u * OW * stride;
        const uint8_t* ix = pi + u * OW * stride;
        if (2 * oh + 1 < H && stride == 1) unpool_row<U, true, true>(g, ix, W, OW, 1, r0, r0 + W);
        else if (2 * oh + 1 < H) unpool_row<U, true>(g, ix, W, OW, stride, r0, r0 + W * stride);
        else unpool_row<U, false>(g, ix, W, OW, stride, r0, nullptr);
        if (oh == OH - 1 && 2 * OH < H) {  // floor mode, odd H: the image's last row is in no window
          U* last = px + (img * H + H - 1) * W * stride;
          std::fill(last, last + W * stride, U(0));
        }
      });
    });
    return {gx, at::Tensor()};
  }
};

}  // namespace

bool relu_max_pool2x2_applies(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return x.defined() && x.device().is_cpu() && x.dim() == 4 && x.size(2) >= 2 && x.size(3) >= 2 &&
         (t == at::kFloat || t == at::kDouble || t == at::kBFloat16) &&
         (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor relu_max_pool2x2(const at::Tensor& x, bool ceil) { return ReluMaxPoolFn::apply(x, ceil); }

}  // namespace braid::nn
