// bench/dnnl_int8_mb.cpp — one oneDNN 2.6 matmul primitive timed alone (issue 19, docs/results/engine.md 2026-12-06):
// the int8 path of nn/prepack (3-D [1, M, K] s8 x s8 with per-N output scales, a [1, M, 1] row-scale multiply,
// bias and erf-GELU post-ops) against u8 activations with / without a zero point and fp32.
//   g++ -O2 -std=c++17 bench/dnnl_int8_mb.cpp -ldnnl -o /tmp/mb && OMP_NUM_THREADS=1 /tmp/mb M K N V
// V: 0 s8 (nn/prepack), 1 u8 + zero point 128, 2 u8 without zero point, 3 fp32. Prints the best of 7 x 2000 calls.
#include <oneapi/dnnl/dnnl.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <unordered_map>
using namespace dnnl; using tag=memory::format_tag; using dt=memory::data_type;
int main(int argc,char**argv){
  engine eng(engine::kind::cpu,0); stream s(eng);
  int64_t M=atoi(argv[1]),K=atoi(argv[2]),N=atoi(argv[3]); int v=atoi(argv[4]);  // 0 s8 (current), 1 u8 + zp 128, 2 u8 no zp, 3 f32
  dt sdt = v==0?dt::s8: v==3?dt::f32: dt::u8;
  memory::desc src({1,M,K}, sdt, tag::abc), wts({1,K,N}, v==3?dt::f32:dt::s8, tag::any), dst({1,M,N},dt::f32,tag::abc);
  post_ops po; primitive_attr attr;
  if(v!=3) attr.set_output_scales(4, std::vector<float>(N,0.01f));
  if(v==1) attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
  po.append_binary(algorithm::binary_mul, memory::desc({1,M,1},dt::f32,tag::abc));
  po.append_binary(algorithm::binary_add, memory::desc({1,1,N},dt::f32,tag::abc));
  po.append_eltwise(1.f, algorithm::eltwise_gelu_erf,0,0);
  attr.set_post_ops(po);
  matmul::primitive_desc pd(matmul::desc(src,wts,dst),attr,eng);
  memory wp(pd.weights_desc(),eng), sm(src,eng), dm(dst,eng);
  memset(sm.get_data_handle(),1,src.get_size()); memset(wp.get_data_handle(),0,wp.get_desc().get_size());
  std::vector<float> row(M,1.f), b(N,0.1f);
  std::unordered_map<int,memory> args{{DNNL_ARG_SRC,sm},{DNNL_ARG_WEIGHTS,wp},{DNNL_ARG_DST,dm}};
  args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0)|DNNL_ARG_SRC_1, memory({{1,M,1},dt::f32,tag::abc},eng,row.data()));
  args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1)|DNNL_ARG_SRC_1, memory({{1,1,N},dt::f32,tag::abc},eng,b.data()));
  matmul prim(pd);
  double best=1e9;
  for(int r=0;r<7;r++){ int n=2000; auto t0=std::chrono::steady_clock::now(); for(int j=0;j<n;j++){prim.execute(s,args);} s.wait();
    best=std::min(best,std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count()/n);}
  printf("v%d M%ld K%ld N%ld %s %.1f us  %.0f GOP/s\n",v,M,K,N,pd.impl_info_str(),best*1e6, 2.0*M*K*N/best/1e9);
}
