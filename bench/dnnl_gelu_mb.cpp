// bench/dnnl_gelu_mb.cpp — the fp32 matmul primitive of nn/prepack (make_kernel) timed alone with and without
// its post-ops (issue 19, docs/results/engine.md 2026-12-06 "GELU"): is ff1's erf-GELU post-op the cost, or the
// shape (N = 4·dim output vs K = 4·dim reduction)?
//   g++ -O2 -std=c++17 -Isrc bench/dnnl_gelu_mb.cpp -ldnnl -o /tmp/gmb && OMP_NUM_THREADS=1 /tmp/gmb M K N V [V ...]
// V: 0 bias only, 1 bias + erf-GELU post-op (ff1), 2 bias + residual add post-op (ff2), 3 bias only then a
// separate AVX-512 erf-GELU pass over the output (nn/gelu_avx512.h, as nn/fused_infer's infer_gelu_). Variants
// given together alternate; best of 15 x n calls each, in thread CPU time.
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "braid/nn/gelu_avx512.h"
using braid::nn::gelu_avx512;
using namespace dnnl; using tag = memory::format_tag; using dt = memory::data_type;
// This thread's CPU time (1 thread: oneDNN runs in the calling thread; a shared machine's waits not counted).
double thread_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// One variant's primitive, its arguments and the best time seen.
struct Case {
  int v;
  matmul prim;
  std::unordered_map<int, memory> args;
  float* out;
  int64_t n_out;
  std::string impl;
  double best = 1e9;
};

int main(int argc, char** argv) {
  if (argc < 5) { std::fprintf(stderr, "usage: %s M K N V [V ...]\n", argv[0]); return 2; }
  engine eng(engine::kind::cpu, 0); stream s(eng);
  const int64_t M = atoll(argv[1]), K = atoll(argv[2]), N = atoll(argv[3]);
  memory::desc src({M, K}, dt::f32, tag::ab), wts({K, N}, dt::f32, tag::any), dst({M, N}, dt::f32, tag::ab),
      bias({1, N}, dt::f32, tag::ab);
  std::vector<float> a(M * K), w(K * N), b(N, 0.1f), r(M * N, 0.5f), o(M * N);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(int(i % 17) - 8) * 0.05f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i % 13) - 6) * 0.01f;
  memory plain({{K, N}, dt::f32, tag::ab}, eng, w.data());
  std::vector<Case> cases;
  for (int i = 4; i < argc; ++i) {
    const int v = atoi(argv[i]);
    post_ops po;
    if (v == 1) po.append_eltwise(1.f, algorithm::eltwise_gelu_erf, 0.f, 0.f);
    if (v == 2) po.append_binary(algorithm::binary_add, dst);
    primitive_attr attr; attr.set_post_ops(po);
    matmul::primitive_desc pd(matmul::desc(src, wts, bias, dst), attr, eng);
    memory wp(pd.weights_desc(), eng);
    reorder(plain, wp).execute(s, plain, wp); s.wait();
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(src, eng, a.data())}, {DNNL_ARG_WEIGHTS, wp},
                                         {DNNL_ARG_BIAS, memory(bias, eng, b.data())}, {DNNL_ARG_DST, memory(dst, eng, o.data())}};
    if (v == 2) args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, memory(dst, eng, r.data()));
    cases.push_back(Case{v, matmul(pd), args, o.data(), M * N, pd.impl_info_str()});
  }
  const int n = std::max<int>(20, int(1e10 / double(2 * M * K * N)));
  for (int rep = 0; rep < 15; ++rep)  // the variants alternate, so a loaded moment hits them alike
    for (auto& c : cases) {
      const double t0 = thread_seconds();
      for (int j = 0; j < n; ++j) {
        c.prim.execute(s, c.args);
        if (c.v == 3) gelu_avx512(c.out, c.n_out);
      }
      s.wait();
      c.best = std::min(c.best, (thread_seconds() - t0) / n);
    }
  for (auto& c : cases)
    std::printf("v%d M%ld K%ld N%ld %s %.1f us  %.0f GFLOP/s\n", c.v, long(M), long(K), long(N), c.impl.c_str(),
                c.best * 1e6, 2.0 * M * K * N / c.best / 1e9);
}
