#include "braid/nn/prepack.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "braid/core/error.h"

#if BRAID_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BRAID_QUANT_AVX512 1
#endif

namespace braid::nn {

namespace {

std::atomic<bool> g_int8_allowed{true};
std::atomic<const char*> g_int8_off_by{""};  // who forced int8 off (set_int8_allowed)

// A row's scale max|x| / 127; NaN when the row holds a NaN or an infinity, so that its outputs come out NaN (as
// non-finite inputs do in fp32) instead of finite numbers from clamped codes.
float row_scale(float amax, bool nan) {
  return nan || !std::isfinite(amax) ? std::numeric_limits<float>::quiet_NaN() : amax / 127.f;
}

// Rows [r0, r1) of x [M, K] -> q (s8) and scale (per row), scalar. inv = 127 / max|x_m|: q = round_half_even(x inv).
void quantize_rows_scalar(const float* x, int8_t* q, float* scale, int64_t r0, int64_t r1, int64_t K) {
  for (int64_t m = r0; m < r1; ++m) {
    const float* xr = x + m * K;
    int8_t* qr = q + m * K;
    float amax = 0.f;
    bool nan = false;
    for (int64_t k = 0; k < K; ++k) {
      amax = std::max(amax, std::fabs(xr[k]));
      nan |= std::isnan(xr[k]);
    }
    const float inv = amax > 0.f ? 127.f / amax : 0.f;
    scale[m] = row_scale(amax, nan);
    for (int64_t k = 0; k < K; ++k)
      qr[k] = static_cast<int8_t>(std::clamp(std::nearbyint(xr[k] * inv), -127.f, 127.f));
  }
}

#ifdef BRAID_QUANT_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's avx512fintrin.h (_mm512_undefined_*)
// 16 floats · inv rounded to int32 in [-127, 127] (cvtps_epi32 rounds half to even under the default MXCSR, as
// nearbyint does)
__attribute__((target("avx512f"))) inline __m512i quantize16(__m512 v, __m512 inv) {
  return _mm512_min_epi32(_mm512_set1_epi32(127),
                          _mm512_max_epi32(_mm512_set1_epi32(-127), _mm512_cvtps_epi32(_mm512_mul_ps(v, inv))));
}

// quantize_rows_scalar with AVX-512F
__attribute__((target("avx512f"))) void quantize_rows_avx512(const float* x, int8_t* q, float* scale, int64_t r0,
                                                             int64_t r1, int64_t K) {
  const int64_t tail = K % 16, full = K - tail;
  const __mmask16 tm = static_cast<__mmask16>((1u << tail) - 1);
  for (int64_t m = r0; m < r1; ++m) {
    const float* xr = x + m * K;
    int8_t* qr = q + m * K;
    __m512 mx = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (int64_t k = 0; k < full; k += 16) {
      const __m512 v = _mm512_loadu_ps(xr + k);
      mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    if (tail) {
      const __m512 v = _mm512_maskz_loadu_ps(tm, xr + full);
      mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    const float amax = _mm512_reduce_max_ps(mx);
    const float inv = amax > 0.f ? 127.f / amax : 0.f;
    scale[m] = row_scale(amax, nan != 0);
    const __m512 vinv = _mm512_set1_ps(inv);
    for (int64_t k = 0; k < full; k += 16)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + k), _mm512_cvtsepi32_epi8(quantize16(_mm512_loadu_ps(xr + k), vinv)));
    if (tail) _mm512_mask_cvtsepi32_storeu_epi8(qr + full, tm, quantize16(_mm512_maskz_loadu_ps(tm, xr + full), vinv));
  }
}
#pragma GCC diagnostic pop
#endif

bool has_avx512f() {
#ifdef BRAID_QUANT_AVX512
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

}  // namespace

void set_int8_allowed(bool allowed, const char* by) {
  g_int8_off_by = by;
  g_int8_allowed = allowed;
}

bool resolve_int8(const std::string& who) {
  const auto s = int8_support();
  if (s.ok) {
    spdlog::info("precision int8: {}; attention and everything outside the Linear layers stay fp32", s.reason);
    return true;
  }
  if (s.forced_off) {
    spdlog::warn("precision int8 -> fp32 ({})", s.reason);
    return false;
  }
  input_error("{} --precision int8: {}", who, s.reason);
}

std::pair<at::Tensor, at::Tensor> quantize_rows_s8(const at::Tensor& x, bool vector) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu() && x.is_contiguous(),
              "quantize_rows_s8: a contiguous float32 CPU [M, K] tensor, got ", x.sizes(), " ", x.scalar_type());
  const int64_t M = x.size(0), K = x.size(1);
  auto q = at::empty({M, K}, x.options().dtype(at::kChar));
  auto scale = at::empty({M}, x.options());
  const float* xp = x.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = scale.data_ptr<float>();
  const bool avx = vector && has_avx512f();
  at::parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t r0, int64_t r1) {
#ifdef BRAID_QUANT_AVX512
    if (avx) return quantize_rows_avx512(xp, qp, sp, r0, r1, K);
#endif
    quantize_rows_scalar(xp, qp, sp, r0, r1, K);
  });
  return {q, scale};
}

#if BRAID_HAVE_DNNL

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Every primitive braid creates takes its scratchpad from the caller (scratchpad_mode::user). In oneDNN's default
// (library) mode, built without DNNL_ENABLE_CONCURRENT_EXEC as Debian's is, a primitive uses a global scratchpad
// shared by the primitives its creating thread made (dnnl_config.h: it "does not work" when a primitive is created
// and run on different threads): chunks of nn/infer_threads.h's split and the server's batcher run kernels created
// on other threads, and AMX / brgemm kernels need a scratchpad. execute() gives each run its own.
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

// Runs `prim` on this thread's stream with this thread's scratchpad (`scratch`: the primitive's scratchpad_desc())
// and waits for it. The buffer only grows: each run finishes before the next on the thread starts, so one per
// thread is enough and the GEMM path allocates nothing once it is warm.
void execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratch, std::unordered_map<int, dnnl::memory> args) {
  thread_local dnnl::stream stream(cpu_engine());
  thread_local at::Tensor buf;
  if (const auto bytes = static_cast<int64_t>(scratch.get_size()); bytes > 0) {
    if (!buf.defined() || buf.numel() < bytes) buf = at::empty({bytes}, at::TensorOptions().dtype(at::kByte));
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch, cpu_engine(), buf.data_ptr()));
  }
  prim.execute(stream, args);
  stream.wait();
}

// One matmul primitive (for one M and epilogue) and the packed weights in the layout it reads; the post-op
// index of the bias, the residual and (int8) the per-row activation scales, -1 where absent.
struct Kernel {
  dnnl::matmul prim;
  dnnl::memory weights;
  dnnl::memory::desc scratch;  // its scratchpad (user-managed: see execute())
  int bias_po = -1, residual_po = -1, rows_po = -1;
};

// The packed state of one Linear weight [N, K] (or a patch convolution's [N, C, p, p], read as [N, K = C·p·p]).
struct Packed {
  at::Tensor weight;     // the layer's weight: kept alive, its TensorImpl address is the key
  int64_t version = -1;  // weight._version() when packed
  int64_t K = 0, N = 0;
  std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> layouts;  // packed copies, one per layout asked for
  // (M, epilogue, bias, residual, intra-op threads: oneDNN plans a primitive for the threads it sees when created, and
  // nn/infer_threads.h runs forwards with one thread inside a parallel region)
  std::map<std::tuple<int64_t, int, bool, bool, int>, std::shared_ptr<Kernel>> kernels;
  bool broken = false;   // oneDNN refused a primitive: always fall back
  bool int8 = false;     // quantized: qweight [N, K] s8, wscale [N] (weight = qweight · wscale per row)
  at::Tensor qweight;
  std::vector<float> wscale;
};

std::mutex g_mu;
std::unordered_map<const void*, std::shared_ptr<Packed>> g_packed;
std::atomic<int64_t> g_count{0};

constexpr size_t kMaxKernelsPerWeight = 256;  // distinct M values cached (serve sees many batch shapes)

// The weight in the layout `md`, packing it there the first time (under g_mu).
dnnl::memory layout_for(Packed& p, const dnnl::memory::desc& md) {
  for (auto& [d, m] : p.layouts)
    if (d == md) return m;
  auto w = p.int8 ? p.qweight : p.weight.contiguous();  // [N, K] row-major = [K, N] in oneDNN's `ba`
  dnnl::memory plain = p.int8 ? dnnl::memory({{1, p.K, p.N}, dt::s8, tag::acb}, cpu_engine(), w.data_ptr<int8_t>())
                              : dnnl::memory({{p.K, p.N}, dt::f32, tag::ba}, cpu_engine(), w.data_ptr<float>());
  dnnl::memory packed(md, cpu_engine());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(plain, packed).execute(s, plain, packed);
  s.wait();
  p.layouts.emplace_back(md, packed);
  return packed;
}

std::shared_ptr<Kernel> make_kernel(Packed& p, int64_t M, Epilogue e, bool bias, bool residual) {
  const dnnl::memory::dims mk{M, p.K}, kn{p.K, p.N}, mn{M, p.N};
  dnnl::memory::desc src(mk, dt::f32, tag::ab), wts(kn, dt::f32, tag::any), dst(mn, dt::f32, tag::ab);
  dnnl::memory::desc b = bias ? dnnl::memory::desc({1, p.N}, dt::f32, tag::ab) : dnnl::memory::desc();
  dnnl::post_ops po;
  if (e == Epilogue::Gelu) po.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
  if (residual) po.append_binary(dnnl::algorithm::binary_add, dst);
  auto attr = user_scratchpad();
  attr.set_post_ops(po);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wts, b, dst), attr, cpu_engine());
  auto k = std::make_shared<Kernel>(Kernel{dnnl::matmul(pd), layout_for(p, pd.weights_desc()), pd.scratchpad_desc()});
  if (residual) k->residual_po = e == Epilogue::Gelu ? 1 : 0;
  return k;
}

// int8: s8 x [1, M, K] · s8 W [1, K, N] -> s32, then (post-ops, in order) · wscale[n] (output scales), · the
// row's activation scale (binary mul by [1, M, 1]), + bias [1, 1, N], GELU, + residual [1, M, N]; fp32 out.
// 3-D because oneDNN 2.6's brgemm matmul takes a per-row binary operand only as [1, M, 1] (a 2-D [M, 1] one
// falls back to its reference kernel).
std::shared_ptr<Kernel> make_kernel_int8(Packed& p, int64_t M, Epilogue e, bool bias, bool residual) {
  const dnnl::memory::desc src({1, M, p.K}, dt::s8, tag::abc), wts({1, p.K, p.N}, dt::s8, tag::any),
      dst({1, M, p.N}, dt::f32, tag::abc);
  dnnl::post_ops po;
  int n = 0, rows = n++, b = -1, r = -1;
  po.append_binary(dnnl::algorithm::binary_mul, dnnl::memory::desc({1, M, 1}, dt::f32, tag::abc));
  if (bias) {
    b = n++;
    po.append_binary(dnnl::algorithm::binary_add, dnnl::memory::desc({1, 1, p.N}, dt::f32, tag::abc));
  }
  if (e == Epilogue::Gelu) {
    ++n;
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
  }
  if (residual) {
    r = n++;
    po.append_binary(dnnl::algorithm::binary_add, dst);
  }
  auto attr = user_scratchpad();
  attr.set_output_scales(1 << 2, p.wscale);
  attr.set_post_ops(po);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wts, dst), attr, cpu_engine());
  auto k = std::make_shared<Kernel>(Kernel{dnnl::matmul(pd), layout_for(p, pd.weights_desc()), pd.scratchpad_desc()});
  k->bias_po = b;
  k->residual_po = r;
  k->rows_po = rows;
  return k;
}

std::shared_ptr<Kernel> kernel_for(Packed& p, int64_t M, Epilogue e, bool bias, bool residual) {
  return p.int8 ? make_kernel_int8(p, M, e, bias, residual) : make_kernel(p, M, e, bias, residual);
}

// Symmetric per-output-channel s8 weights: wscale[n] = max_k |W[n,k]| / 127 (0 for a zero row: its q is 0).
void quantize_weight(Packed& p) {
  auto w = p.weight.detach().contiguous();
  auto amax = w.abs().amax(1);                                // [N]
  auto scale = amax / 127.0;
  auto safe = at::where(amax > 0, scale, at::ones_like(scale));
  p.qweight = at::round(w / safe.unsqueeze(1)).clamp(-127, 127).to(at::kChar).contiguous();
  p.wscale.assign(scale.data_ptr<float>(), scale.data_ptr<float>() + p.N);
}

// (Re)packs `p` from its weight (under g_mu).
void repack(Packed& p) {
  p.layouts.clear();
  p.kernels.clear();
  p.version = p.weight._version();
  p.broken = false;
  if (p.int8) quantize_weight(p);
  try {
    kernel_for(p, 64, Epilogue::None, true, false);  // packs the layout of a typical batch
  } catch (const dnnl::error&) {
    p.broken = true;
  }
}

// The Linear layers under `module`, itself included.
std::vector<const torch::nn::LinearImpl*> linears(const torch::nn::Module& module) {
  std::vector<const torch::nn::LinearImpl*> out;
  if (const auto* l = module.as<torch::nn::LinearImpl>()) out.push_back(l);
  for (const auto& m : module.modules(/*include_self=*/false))
    if (const auto* l = m->as<torch::nn::LinearImpl>()) out.push_back(l);
  return out;
}

// The weights prepack_linears packs under `module`: every Linear's, and (fp32 only) every patch convolution's,
// a Conv2d with kernel = stride, no padding, dilation 1, one group: on patch rows [.., C·p·p] it is the Linear
// with weight [N, C·p·p] (ImageViT's inference path calls packed_linear with it).
std::vector<at::Tensor> packable_weights(const torch::nn::Module& module, bool convs) {
  std::vector<at::Tensor> out;
  for (const auto* l : linears(module)) out.push_back(l->weight);
  if (!convs) return out;
  auto patch_conv = [](const torch::nn::Module& m) {
    const auto* c = m.as<torch::nn::Conv2dImpl>();
    if (!c) return false;
    const auto& o = c->options;
    const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
    const bool no_pad = c10::get_if<torch::enumtype::kValid>(&o.padding()) || (pad && **pad == std::array<int64_t, 2>{0, 0});
    return no_pad && o.groups() == 1 && *o.kernel_size() == *o.stride() &&
           *o.dilation() == std::array<int64_t, 2>{1, 1} && c10::get_if<torch::enumtype::kZeros>(&o.padding_mode());
  };
  if (patch_conv(module)) out.push_back(module.as<torch::nn::Conv2dImpl>()->weight);
  for (const auto& m : module.modules(/*include_self=*/false))
    if (patch_conv(*m)) out.push_back(m->as<torch::nn::Conv2dImpl>()->weight);
  return out;
}

// oneDNN's name of its effective ISA (cpu_isa values are nested bit sets).
std::string isa_name(unsigned isa) {
  switch (isa) {
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return fmt::format("0x{:x}", isa);
  }
}

}  // namespace

bool prepack_available() { return true; }

Int8Support int8_support() {
  Int8Support s;
  if (!g_int8_allowed) {
    s.forced_off = true;
    s.reason = fmt::format("int8 disabled by {}", g_int8_off_by.load());
    return s;
  }
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [isa](unsigned bits) { return (isa & bits) == bits; };
  if (!has(dnnl_cpu_isa_avx512_core_vnni) && !has(dnnl_cpu_isa_avx2_vnni)) {
    s.reason = fmt::format("this CPU has no VNNI 8-bit dot products for oneDNN (its ISA: {}; int8 needs "
                           "avx512_vnni or avx_vnni)", isa_name(isa));
    return s;
  }
  s.ok = true;
  s.reason = fmt::format("oneDNN {} (VNNI)", isa_name(isa));
  return s;
}

int64_t prepack_linears(const torch::nn::Module& module, PackPrecision precision) {
  const bool int8 = precision == PackPrecision::Int8 && int8_support().ok;
  int64_t n = 0;
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& w : packable_weights(module, /*convs=*/!int8)) {
    if (!w.defined() || w.dim() < 2 || !w.device().is_cpu() || w.scalar_type() != at::kFloat || w.size(0) == 0) continue;
    auto p = std::make_shared<Packed>();
    p->weight = w;
    p->N = w.size(0);
    p->K = w.numel() / w.size(0);
    p->int8 = int8;
    repack(*p);
    if (p->broken) continue;
    if (g_packed.insert_or_assign(w.unsafeGetTensorImpl(), p).second) g_count.fetch_add(1);
    ++n;
  }
  return n;
}

void clear_prepacked() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_packed.clear();
  g_count.store(0);
}

void release_prepacked(const torch::nn::Module& module) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& w : packable_weights(module, /*convs=*/true))
    if (w.defined() && g_packed.erase(w.unsafeGetTensorImpl())) g_count.fetch_sub(1);
}

int64_t prepacked_count() { return g_count.load(); }

int64_t prepacked_int8_count() {
  std::lock_guard<std::mutex> lock(g_mu);
  return std::count_if(g_packed.begin(), g_packed.end(), [](const auto& kv) { return kv.second->int8; });
}

at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, Epilogue epilogue,
                         const at::Tensor& residual) {
  if (g_count.load(std::memory_order_relaxed) == 0 || !weight.defined()) return {};
  if (at::GradMode::is_enabled() || x.requires_grad() || !x.device().is_cpu() || x.scalar_type() != at::kFloat ||
      at::autocast::is_cpu_enabled() || x.dim() < 1)
    return {};
  const bool has_bias = bias.defined(), has_res = residual.defined();
  if (has_bias && (bias.scalar_type() != at::kFloat || !bias.device().is_cpu())) return {};
  if (has_res && (residual.scalar_type() != at::kFloat || !residual.device().is_cpu())) return {};
  std::shared_ptr<Kernel> k;
  int64_t K = 0, N = 0;
  bool int8 = false;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_packed.find(weight.unsafeGetTensorImpl());
    if (it == g_packed.end()) return {};
    Packed& p = *it->second;
    if (p.weight._version() != p.version) repack(p);  // changed in place since it was packed
    if (p.broken) return {};
    K = p.K;
    N = p.N;
    int8 = p.int8;
    if (x.size(-1) != K || (has_bias && bias.numel() != N)) return {};
    const int64_t M = x.numel() / K;
    if (M == 0 || (has_res && residual.numel() != M * N)) return {};
    const auto key = std::make_tuple(M, static_cast<int>(epilogue), has_bias, has_res, at::get_num_threads());
    auto kt = p.kernels.find(key);
    if (kt != p.kernels.end()) {
      k = kt->second;
    } else {
      try {
        k = kernel_for(p, M, epilogue, has_bias, has_res);
      } catch (const dnnl::error&) {
        p.broken = true;
        return {};
      }
      if (p.kernels.size() >= kMaxKernelsPerWeight) p.kernels.clear();
      p.kernels.emplace(key, k);
    }
  }
  auto xc = x.contiguous();
  const int64_t M = xc.numel() / K;
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto out = at::empty(sizes, x.options());
  auto& eng = cpu_engine();
  // int8: 3-D descriptors [1, M, ·] (make_kernel_int8), the rows quantized now; fp32: 2-D
  auto md = [int8](int64_t a, int64_t b, dt t) {
    return int8 ? dnnl::memory::desc({1, a, b}, t, tag::abc) : dnnl::memory::desc({a, b}, t, tag::ab);
  };
  at::Tensor q, rows;  // int8: the quantized rows and their scales
  if (int8) std::tie(q, rows) = quantize_rows_s8(xc.view({M, K}));
  dnnl::memory src = int8 ? dnnl::memory(md(M, K, dt::s8), eng, q.data_ptr<int8_t>())
                          : dnnl::memory(md(M, K, dt::f32), eng, xc.data_ptr<float>());
  dnnl::memory dst(md(M, N, dt::f32), eng, out.data_ptr<float>());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, k->weights}, {DNNL_ARG_DST, dst}};
  auto post_op_arg = [](int i) { return DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1; };
  if (int8) args.emplace(post_op_arg(k->rows_po), dnnl::memory(md(M, 1, dt::f32), eng, rows.data_ptr<float>()));
  at::Tensor bc, rc;  // contiguous copies (when needed) live until the kernel has run
  if (has_bias) {
    bc = bias.contiguous();
    args.emplace(int8 ? post_op_arg(k->bias_po) : DNNL_ARG_BIAS, dnnl::memory(md(1, N, dt::f32), eng, bc.data_ptr<float>()));
  }
  if (has_res) {
    rc = residual.contiguous();
    args.emplace(post_op_arg(k->residual_po), dnnl::memory(md(M, N, dt::f32), eng, rc.data_ptr<float>()));
  }
  execute(k->prim, k->scratch, std::move(args));
  return out;
}

namespace {

struct AttentionKernels {
  dnnl::matmul qk, wv;  // scores = q kᵀ / √d; out = softmax(scores) v
  dnnl::memory::desc qk_scratch, wv_scratch;
};
// B, T, H, d, intra-op threads (as Packed::kernels)
std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int>, std::shared_ptr<AttentionKernels>> g_attention;

std::shared_ptr<AttentionKernels> attention_kernels(int64_t B, int64_t T, int64_t H, int64_t d) {  // under g_mu
  const auto key = std::make_tuple(B, T, H, d, at::get_num_threads());
  if (auto it = g_attention.find(key); it != g_attention.end()) return it->second;
  const int64_t row = 3 * H * d;  // one token of qkv [B, T, 3, H, d]
  const dnnl::memory::desc q({B, H, T, d}, dt::f32, {T * row, d, row, 1});
  const dnnl::memory::desc kt({B, H, d, T}, dt::f32, {T * row, d, 1, row});
  const dnnl::memory::desc s({B, H, T, T}, dt::f32, tag::abcd);
  const dnnl::memory::desc o({B, H, T, d}, dt::f32, {T * H * d, d, H * d, 1});  // = [B, T, H·d]
  auto scaled = user_scratchpad();
  scaled.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(d))});
  const dnnl::matmul::primitive_desc qk(dnnl::matmul::desc(q, kt, s), scaled, cpu_engine()),
      wv(dnnl::matmul::desc(s, q, o), user_scratchpad(), cpu_engine());
  auto k = std::make_shared<AttentionKernels>(
      AttentionKernels{dnnl::matmul(qk), dnnl::matmul(wv), qk.scratchpad_desc(), wv.scratchpad_desc()});
  if (g_attention.size() >= kMaxKernelsPerWeight) g_attention.clear();
  g_attention.emplace(key, k);
  return k;
}

}  // namespace

at::Tensor packed_attention(const at::Tensor& qkv, int64_t heads, const at::Tensor& pad) {
  if (g_count.load(std::memory_order_relaxed) == 0 || at::GradMode::is_enabled() || qkv.requires_grad() ||
      !qkv.device().is_cpu() || qkv.scalar_type() != at::kFloat || qkv.dim() != 3 || !qkv.is_contiguous() ||
      heads <= 0 || qkv.size(2) % (3 * heads) != 0 || at::autocast::is_cpu_enabled())
    return {};
  const int64_t B = qkv.size(0), T = qkv.size(1), H = heads, d = qkv.size(2) / (3 * heads);
  if (B == 0 || T == 0 || (pad.defined() && (pad.dim() != 2 || pad.size(0) != B || pad.size(1) != T))) return {};
  std::shared_ptr<AttentionKernels> k;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    try {
      k = attention_kernels(B, T, H, d);
    } catch (const dnnl::error&) {
      return {};
    }
  }
  auto& eng = cpu_engine();
  float* base = qkv.data_ptr<float>();
  const int64_t row = 3 * H * d;
  auto scores = at::empty({B, H, T, T}, qkv.options());
  auto out = at::empty({B, T, H * d}, qkv.options());
  const dnnl::memory::desc qd({B, H, T, d}, dt::f32, {T * row, d, row, 1});
  dnnl::memory q(qd, eng, base), v(qd, eng, base + 2 * H * d);
  dnnl::memory kt({{B, H, d, T}, dt::f32, {T * row, d, 1, row}}, eng, base + H * d);
  dnnl::memory s({{B, H, T, T}, dt::f32, tag::abcd}, eng, scores.data_ptr<float>());
  execute(k->qk, k->qk_scratch, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, kt}, {DNNL_ARG_DST, s}});
  if (pad.defined()) scores.masked_fill_(pad.view({B, 1, 1, T}), -std::numeric_limits<float>::infinity());
  auto w = at::softmax(scores, -1);
  if (pad.defined()) w.nan_to_num_(0.0);  // rows with every key masked
  dnnl::memory wm({{B, H, T, T}, dt::f32, tag::abcd}, eng, w.data_ptr<float>());
  dnnl::memory o({{B, H, T, d}, dt::f32, {T * H * d, d, H * d, 1}}, eng, out.data_ptr<float>());
  execute(k->wv, k->wv_scratch, {{DNNL_ARG_SRC, wm}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o}});
  return out;
}

#else  // no oneDNN headers at build time

bool prepack_available() { return false; }
Int8Support int8_support() {
  Int8Support s;
  s.reason = "this braid was built without oneDNN (libdnnl-dev): no int8 inference";
  return s;
}
int64_t prepack_linears(const torch::nn::Module&, PackPrecision) { return 0; }
void clear_prepacked() {}
void release_prepacked(const torch::nn::Module&) {}
int64_t prepacked_count() { return 0; }
int64_t prepacked_int8_count() { return 0; }
at::Tensor packed_linear(const at::Tensor&, const at::Tensor&, const at::Tensor&, Epilogue, const at::Tensor&) {
  return {};
}
at::Tensor packed_attention(const at::Tensor&, int64_t, const at::Tensor&) { return {}; }

#endif

bool any_prepacked() { return prepacked_count() > 0; }

}  // namespace braid::nn
