// src/braid/nn/prepack.h — inference through pre-packed oneDNN weights (issue 19).
//
// `prepack_linears(module)` copies the weight of every float32 CPU torch::nn::Linear under `module` into
// the blocked layout oneDNN's matmul kernels read (once), and `packed_linear` then computes
// act(x Wᵀ + b) (+ residual) with a oneDNN matmul primitive on those packed weights, with the bias, GELU
// and residual add as post-ops of the same kernel. Against at::linear (OpenBLAS sgemm, which re-packs
// the weight on every call and on these hosts may be pinned to AVX2 kernels by OPENBLAS_CORETYPE) this
// runs the CPU's own best kernels (brgemm avx512_core on AVX-512 hosts) with no per-call packing.
//
// Only for inference: packed_linear returns an undefined tensor (the caller falls back to at::linear)
// unless grad mode is off, x is a float32 CPU tensor that does not require grad, CPU autocast is off and
// the weight was packed and has not changed since (its version counter). Results match at::linear to
// float rounding (a different summation order; tests/prepack_test.cpp checks 1e-4).
//
// The packed copies (one per Linear, the size of its weight) stay until clear_prepacked(); they hold a
// reference to the weight tensor, so a weight cannot be freed and its address reused while packed.
// Thread-safe: packing and lookups take a mutex; concurrent calls run the same primitives.
// Built only where oneDNN's headers were found (Debian: libdnnl-dev); elsewhere prepack_available() is
// false, prepack_linears packs nothing and packed_linear always returns an undefined tensor.
//
// int8 (PackPrecision::Int8, `--precision int8`): the weight is quantized once at pack time, symmetric per
// output channel (s8, scale_n = max_k |W[n,k]| / 127); at run time each row of x is quantized symmetric to s8
// (scale_m = max_k |x[m,k]| / 127), the matmul accumulates in s32 (VNNI), and dst = acc · scale_n (output
// scales) · scale_m (a binary-mul post-op), then + bias, GELU, + residual as post-ops of the same primitive,
// fp32 out. Attention stays fp32. Only where int8_support().ok (oneDNN and a VNNI CPU); elsewhere int8 packing
// packs fp32. Accuracy: tests/int8_test.cpp (docs/results/engine.md, 2026-12-06).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <utility>

namespace braid::nn {

// True when this build has the oneDNN path (BRAID_HAVE_DNNL).
bool prepack_available();

enum class PackPrecision { FP32, Int8 };

// Whether int8 packing runs here: oneDNN in this build, a CPU with 8-bit dot products that oneDNN uses
// (its effective ISA avx512_core_vnni or above, or avx2_vnni), and int8 not forced off (set_int8_allowed(false);
// the CLI does that for BRAID_CPU_INT8=0). `reason`: the ISA when ok ("oneDNN avx512_core_bf16 (VNNI)"), else
// why not ("this CPU has no VNNI ...", "int8 disabled by BRAID_CPU_INT8=0", ...). `forced_off`: ok is false only
// because of the switch (callers fall back to fp32; a missing ISA or oneDNN is refused).
struct Int8Support {
  bool ok = false;
  bool forced_off = false;
  std::string reason;
};
Int8Support int8_support();
// Allow (default) or forbid int8; `by` (a string literal) names who forbade it in int8_support().reason.
void set_int8_allowed(bool allowed, const char* by = "set_int8_allowed(false)");

// A user's `--precision int8` for `who` (e.g. "braid embed"): true when int8 runs here (logs "precision int8:
// <reason>"); false when int8 is forced off (logs "precision int8 -> fp32 (<reason>)": fp32 packing instead);
// an InputError "<who> --precision int8: <reason>" when this CPU or build cannot run it.
bool resolve_int8(const std::string& who);

// Packs the weight of every torch::nn::Linear under `module` (itself included) whose weight is a 2-D
// float32 CPU tensor, and (fp32 only) of every patch convolution, a Conv2d with kernel = stride, no padding, one
// group, as the Linear [out, in·kh·kw] over patch rows (ImageViT's inference path passes it to packed_linear); a
// weight packed before is packed again. `precision` Int8 quantizes them (see the
// header comment) when int8_support().ok, and packs fp32 otherwise. Returns how many were packed (0 without
// oneDNN); prepacked_int8_count() tells how many of all packed weights are int8.
int64_t prepack_linears(const torch::nn::Module& module, PackPrecision precision = PackPrecision::FP32);

// Drops every packed weight (packed_linear falls back to at::linear afterwards).
void clear_prepacked();
// Drops the packed weights of the Linear layers under `module` only (e.g. when the model that packed them is
// closed while others stay packed).
void release_prepacked(const torch::nn::Module& module);

// How many weights are packed now; true when any is (a cheap check for callers' fast paths).
int64_t prepacked_count();
bool any_prepacked();
int64_t prepacked_int8_count();

// The int8 path's activation quantization, exposed for tests: x [M, K] float32 contiguous CPU -> (q [M, K]
// int8, scale [M] float32) with q = round_half_even(x · 127 / max_k |x[m,k]|) in [-127, 127] and
// scale_m = max_k |x[m,k]| / 127 (0 for an all-zero row, whose q is 0; NaN for a row holding a NaN or an infinity,
// whose int8 outputs are then NaN). AVX-512 where the CPU has it, the same results in scalar code elsewhere
// (`vector` false forces the scalar code).
std::pair<at::Tensor, at::Tensor> quantize_rows_s8(const at::Tensor& x, bool vector = true);

enum class Epilogue { None, Gelu };  // Gelu: the erf form, as torch::gelu's default

// act(x Wᵀ + bias) + residual for x [..., K], weight [N, K] (the Linear's, packed), bias [N] or undefined,
// residual shaped like the output [..., N] or undefined. Returns an undefined tensor when the packed
// path does not apply (see the header comment): the caller computes it the usual way.
at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         Epilogue epilogue = Epilogue::None, const at::Tensor& residual = {});

// softmax(q kᵀ / √d, masked) v for the fused projection qkv [B, T, 3·H·d] (q, k, v side by side, each [H, d] per
// token: TransformerBlock's layout) through two batched oneDNN matmuls that read q, k and v in place and write
// the output as [B, T, H·d]; pad [B, T] bool (true = padding) or undefined. Returns an undefined tensor unless
// weights are packed (any_prepacked()), grad mode is off and qkv is a contiguous float32 CPU tensor.
at::Tensor packed_attention(const at::Tensor& qkv, int64_t heads, const at::Tensor& pad = {});

}  // namespace braid::nn
