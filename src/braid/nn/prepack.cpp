#include "braid/nn/prepack.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/modules/linear.h>

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

#if BRAID_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace braid::nn {

#if BRAID_HAVE_DNNL

namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One matmul primitive (for one M and epilogue) and the packed weights in the layout it reads.
struct Kernel {
  dnnl::matmul prim;
  dnnl::memory weights;
};

// The packed state of one Linear weight [N, K].
struct Packed {
  at::Tensor weight;     // the Linear's weight: kept alive, its TensorImpl address is the key
  int64_t version = -1;  // weight._version() when packed
  int64_t K = 0, N = 0;
  std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> layouts;  // packed copies, one per layout asked for
  std::map<std::tuple<int64_t, int, bool, bool>, std::shared_ptr<Kernel>> kernels;  // (M, epilogue, bias, residual)
  bool broken = false;   // oneDNN refused a primitive: always fall back
};

std::mutex g_mu;
std::unordered_map<const void*, std::shared_ptr<Packed>> g_packed;
std::atomic<int64_t> g_count{0};

constexpr size_t kMaxKernelsPerWeight = 256;  // distinct M values cached (serve sees many batch shapes)

// The weight in the layout `md`, packing it there the first time (under g_mu).
dnnl::memory layout_for(Packed& p, const dnnl::memory::desc& md) {
  for (auto& [d, m] : p.layouts)
    if (d == md) return m;
  auto w = p.weight.contiguous();  // [N, K] row-major = [K, N] in oneDNN's `ba`
  dnnl::memory plain({{p.K, p.N}, dt::f32, tag::ba}, cpu_engine(), w.data_ptr<float>());
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
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wts, b, dst), attr, cpu_engine());
  return std::make_shared<Kernel>(Kernel{dnnl::matmul(pd), layout_for(p, pd.weights_desc())});
}

// (Re)packs `p` from its weight (under g_mu).
void repack(Packed& p) {
  p.layouts.clear();
  p.kernels.clear();
  p.version = p.weight._version();
  p.broken = false;
  try {
    make_kernel(p, 64, Epilogue::None, true, false);  // packs the layout of a typical batch
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

}  // namespace

bool prepack_available() { return true; }

int64_t prepack_linears(const torch::nn::Module& module) {
  int64_t n = 0;
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto* l : linears(module)) {
    const auto& w = l->weight;
    if (!w.defined() || w.dim() != 2 || !w.device().is_cpu() || w.scalar_type() != at::kFloat) continue;
    auto p = std::make_shared<Packed>();
    p->weight = w;
    p->N = w.size(0);
    p->K = w.size(1);
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
  for (const auto* l : linears(module))
    if (l->weight.defined() && g_packed.erase(l->weight.unsafeGetTensorImpl())) g_count.fetch_sub(1);
}

int64_t prepacked_count() { return g_count.load(); }

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
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_packed.find(weight.unsafeGetTensorImpl());
    if (it == g_packed.end()) return {};
    Packed& p = *it->second;
    if (p.weight._version() != p.version) repack(p);  // changed in place since it was packed
    if (p.broken) return {};
    K = p.K;
    N = p.N;
    if (x.size(-1) != K || (has_bias && bias.numel() != N)) return {};
    const int64_t M = x.numel() / K;
    if (M == 0 || (has_res && residual.numel() != M * N)) return {};
    const auto key = std::make_tuple(M, static_cast<int>(epilogue), has_bias, has_res);
    auto kt = p.kernels.find(key);
    if (kt != p.kernels.end()) {
      k = kt->second;
    } else {
      try {
        k = make_kernel(p, M, epilogue, has_bias, has_res);
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
  thread_local dnnl::stream stream(cpu_engine());
  dnnl::memory src({{M, K}, dt::f32, tag::ab}, eng, xc.data_ptr<float>());
  dnnl::memory dst({{M, N}, dt::f32, tag::ab}, eng, out.data_ptr<float>());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, k->weights}, {DNNL_ARG_DST, dst}};
  at::Tensor bc, rc;  // contiguous copies (when needed) live until the kernel has run
  if (has_bias) {
    bc = bias.contiguous();
    args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, N}, dt::f32, tag::ab}, eng, bc.data_ptr<float>()));
  }
  if (has_res) {
    rc = residual.contiguous();
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(epilogue == Epilogue::Gelu ? 1 : 0) | DNNL_ARG_SRC_1,
                 dnnl::memory({{M, N}, dt::f32, tag::ab}, eng, rc.data_ptr<float>()));
  }
  k->prim.execute(stream, args);
  stream.wait();
  return out;
}

namespace {

struct AttentionKernels {
  dnnl::matmul qk, wv;  // scores = q kᵀ / √d; out = softmax(scores) v
};
std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, std::shared_ptr<AttentionKernels>> g_attention;  // B, T, H, d

std::shared_ptr<AttentionKernels> attention_kernels(int64_t B, int64_t T, int64_t H, int64_t d) {  // under g_mu
  const auto key = std::make_tuple(B, T, H, d);
  if (auto it = g_attention.find(key); it != g_attention.end()) return it->second;
  const int64_t row = 3 * H * d;  // one token of qkv [B, T, 3, H, d]
  const dnnl::memory::desc q({B, H, T, d}, dt::f32, {T * row, d, row, 1});
  const dnnl::memory::desc kt({B, H, d, T}, dt::f32, {T * row, d, 1, row});
  const dnnl::memory::desc s({B, H, T, T}, dt::f32, tag::abcd);
  const dnnl::memory::desc o({B, H, T, d}, dt::f32, {T * H * d, d, H * d, 1});  // = [B, T, H·d]
  dnnl::primitive_attr scaled;
  scaled.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(d))});
  auto k = std::make_shared<AttentionKernels>(
      AttentionKernels{dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(q, kt, s), scaled, cpu_engine())),
                       dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(s, q, o), cpu_engine()))});
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
  thread_local dnnl::stream stream(cpu_engine());
  float* base = qkv.data_ptr<float>();
  const int64_t row = 3 * H * d;
  auto scores = at::empty({B, H, T, T}, qkv.options());
  auto out = at::empty({B, T, H * d}, qkv.options());
  const dnnl::memory::desc qd({B, H, T, d}, dt::f32, {T * row, d, row, 1});
  dnnl::memory q(qd, eng, base), v(qd, eng, base + 2 * H * d);
  dnnl::memory kt({{B, H, d, T}, dt::f32, {T * row, d, 1, row}}, eng, base + H * d);
  dnnl::memory s({{B, H, T, T}, dt::f32, tag::abcd}, eng, scores.data_ptr<float>());
  k->qk.execute(stream, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, kt}, {DNNL_ARG_DST, s}});
  stream.wait();
  if (pad.defined()) scores.masked_fill_(pad.view({B, 1, 1, T}), -std::numeric_limits<float>::infinity());
  auto w = at::softmax(scores, -1);
  if (pad.defined()) w.nan_to_num_(0.0);  // rows with every key masked
  dnnl::memory wm({{B, H, T, T}, dt::f32, tag::abcd}, eng, w.data_ptr<float>());
  dnnl::memory o({{B, H, T, d}, dt::f32, {T * H * d, d, H * d, 1}}, eng, out.data_ptr<float>());
  k->wv.execute(stream, {{DNNL_ARG_SRC, wm}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o}});
  stream.wait();
  return out;
}

#else  // no oneDNN headers at build time

bool prepack_available() { return false; }
int64_t prepack_linears(const torch::nn::Module&) { return 0; }
void clear_prepacked() {}
void release_prepacked(const torch::nn::Module&) {}
int64_t prepacked_count() { return 0; }
at::Tensor packed_linear(const at::Tensor&, const at::Tensor&, const at::Tensor&, Epilogue, const at::Tensor&) {
  return {};
}
at::Tensor packed_attention(const at::Tensor&, int64_t, const at::Tensor&) { return {}; }

#endif

bool any_prepacked() { return prepacked_count() > 0; }

}  // namespace braid::nn
