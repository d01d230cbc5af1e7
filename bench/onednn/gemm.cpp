// oneDNN against what ringtrain runs, on the CPU step's GEMM shapes and the attention tiles: is
// there a library to take instead of our code? One thread each (the kernels split work over
// their own pool and call single-threaded GEMMs), fp32, best of --reps calls after a warm-up,
// GFLOP/s. Per shape: OpenBLAS's cblas_sgemm (what gemm() and the generic tile path call),
// oneDNN's dnnl_sgemm, oneDNN's matmul primitive (created once, executed --reps times), and for
// the tile shapes the micro-kernel of this CPU (kernels/cpu/tile_kernels.h; the score tile
// includes its key transpose).
//
//   bench_onednn_gemm [--reps 20]        (OMP_NUM_THREADS=1: oneDNN's own OpenMP pool)
//
// Built only where oneDNN's headers and library are found (Debian: libdnnl-dev), by
// bench/onednn/CMakeLists.txt; docs/BENCHMARKS.md has its numbers.
#include <cblas.h>
#include <dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/tile_kernels.h"

namespace {

using Clock = std::chrono::steady_clock;

double best_s(int reps, const std::function<void()>& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

#define DNNL_OK(call)                                                   \
  do {                                                                  \
    if ((call) != dnnl_success) {                                       \
      std::fprintf(stderr, "bench_onednn_gemm: %s failed\n", #call);    \
      std::exit(1);                                                     \
    }                                                                   \
  } while (0)

// C[m, n] = op(A) op(B) with oneDNN's matmul primitive, row-major (strides give the transposes).
class Matmul {
 public:
  Matmul(dnnl_engine_t eng, int m, int n, int k, bool ta, bool tb) : eng_(eng) {
    const dnnl_dims_t ad = {m, k}, bd = {k, n}, cd = {m, n};
    const dnnl_dims_t as = {ta ? 1 : k, ta ? m : 1}, bs = {tb ? 1 : n, tb ? k : 1}, cs = {n, 1};
    DNNL_OK(dnnl_memory_desc_init_by_strides(&a_, 2, ad, dnnl_f32, as));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&b_, 2, bd, dnnl_f32, bs));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&c_, 2, cd, dnnl_f32, cs));
    dnnl_matmul_desc_t desc;
    DNNL_OK(dnnl_matmul_desc_init(&desc, &a_, &b_, nullptr, &c_));
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, nullptr, eng, nullptr));
    DNNL_OK(dnnl_primitive_create(&prim_, pd));
    dnnl_primitive_desc_destroy(pd);
    DNNL_OK(dnnl_stream_create(&stream_, eng, dnnl_stream_default_flags));
  }
  ~Matmul() {
    dnnl_primitive_destroy(prim_);
    dnnl_stream_destroy(stream_);
  }
  void run(const float* a, const float* b, float* c) {
    dnnl_memory_t ma, mb, mc;
    DNNL_OK(dnnl_memory_create(&ma, &a_, eng_, const_cast<float*>(a)));
    DNNL_OK(dnnl_memory_create(&mb, &b_, eng_, const_cast<float*>(b)));
    DNNL_OK(dnnl_memory_create(&mc, &c_, eng_, c));
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    DNNL_OK(dnnl_primitive_execute(prim_, stream_, 3, args));
    DNNL_OK(dnnl_stream_wait(stream_));
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mb);
    dnnl_memory_destroy(mc);
  }

 private:
  dnnl_engine_t eng_;
  dnnl_memory_desc_t a_, b_, c_;
  dnnl_primitive_t prim_;
  dnnl_stream_t stream_;
};

struct Shape {
  const char* what;
  int m, n, k;
  bool ta, tb;
  int tile;  // 0: a step GEMM; 1: score tile (A B^T, k = d); 2: d-wide tile product (A B, n = d)
};

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  openblas_set_num_threads(1);
  dnnl_engine_t eng;
  DNNL_OK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  const ringtrain::cpu::TileKernels* mk = ringtrain::cpu::tile_kernels();
  // s256 (d 256, 8/4 heads of 64, d_ff 688, vocab 512) at 1024 tokens: the linear layers
  // forward (x W^T), backward dx (dy W) and dW (dy^T x); the attention tiles at d = 64; the
  // n x n x n products of scripts/bench-cpu's sgemm ceiling.
  const Shape shapes[] = {
      {"q/o proj fwd", 1024, 256, 256, false, true, 0},   {"kv proj fwd", 1024, 128, 256, false, true, 0},
      {"gate/up fwd", 1024, 688, 256, false, true, 0},    {"down fwd", 1024, 256, 688, false, true, 0},
      {"head fwd", 1024, 512, 256, false, true, 0},       {"gate/up dx", 1024, 256, 688, false, false, 0},
      {"gate/up dW", 688, 256, 1024, true, false, 0},     {"down dW", 256, 688, 1024, true, false, 0},
      {"score tile", 128, 128, 64, false, true, 1},       {"score tile wide", 128, 256, 64, false, true, 1},
      {"d-wide tile", 128, 64, 128, false, false, 2},     {"d-wide tile ^T", 128, 64, 128, true, false, 2},
      {"square (bench-cpu's ceiling)", 1024, 1024, 1024, false, false, 0},
      {"square (bench-cpu's ceiling)", 2048, 2048, 2048, false, false, 0},
  };
  std::printf("one thread, GFLOP/s (best of %d); micro-kernel: %s\n\n", reps,
              ringtrain::cpu::isa_name(ringtrain::cpu::active_isa()));
  std::printf("| shape | m x n x k | OpenBLAS | oneDNN sgemm | oneDNN matmul | micro-kernel |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  for (const Shape& s : shapes) {
    const int lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n, ldc = s.n;
    std::vector<float> a(static_cast<size_t>(s.m) * s.k, 0.5f), b(static_cast<size_t>(s.k) * s.n, 0.25f),
        c(static_cast<size_t>(s.m) * (s.n + 16), 0.0f);
    const double flops = 2.0 * s.m * s.n * s.k;
    const double t_blas = best_s(reps, [&] {
      cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, s.m, s.n, s.k,
                  1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), ldc);
    });
    const double t_dnnl = best_s(reps, [&] {
      DNNL_OK(dnnl_sgemm(s.ta ? 'T' : 'N', s.tb ? 'T' : 'N', s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f,
                         c.data(), ldc));
    });
    Matmul mm(eng, s.m, s.n, s.k, s.ta, s.tb);
    const double t_mm = best_s(reps, [&] { mm.run(a.data(), b.data(), c.data()); });
    std::string t_mk = "-";
    if (mk != nullptr && s.tile == 1) {
      const int64_t ldbt = ringtrain::cpu::kAttnTileKMax + 16;
      std::vector<float> bt(static_cast<size_t>(s.k) * ldbt);
      const double t = best_s(reps, [&] {
        mk->transpose_keys(b.data(), ldb, s.n, s.k, bt.data(), ldbt);
        mk->gemm_nt(s.m, s.n, s.k, 1.0f, a.data(), lda, bt.data(), ldbt, c.data(), ldc);
      });
      t_mk = std::to_string(static_cast<int>(flops / t * 1e-9));
    } else if (mk != nullptr && s.tile == 2 && mk->supports_d(s.n)) {
      const double t = best_s(reps, [&] {
        mk->gemm_nd(s.m, s.n, s.k, 1.0f, a.data(), s.ta ? 1 : lda, s.ta ? lda : 1, b.data(), ldb, c.data(), ldc);
      });
      t_mk = std::to_string(static_cast<int>(flops / t * 1e-9));
    }
    std::printf("| %s | %d x %d x %d%s%s | %.0f | %.0f | %.0f | %s |\n", s.what, s.m, s.n, s.k, s.ta ? " A^T" : "",
                s.tb ? " B^T" : "", flops / t_blas * 1e-9, flops / t_dnnl * 1e-9, flops / t_mm * 1e-9, t_mk.c_str());
  }
  dnnl_engine_destroy(eng);
  return 0;
}
