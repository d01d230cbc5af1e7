// GEMM on oneDNN's sgemm where the build found it (RINGTRAIN_HAS_ONEDNN), else OpenBLAS's.
// Row-major throughout; the transposes are flags to sgemm, never copies. oneDNN compiles its
// kernels for the CPU at hand (AVX-512, AMX...), where Debian's OpenBLAS 0.3.21 runs its AVX2
// kernels on AMD's AVX-512 CPUs: on the 2-core Zen VM, one thread, the s256 step's shapes ran at
// 230-260 GFLOP/s on oneDNN against 120-130 on OpenBLAS (bench/onednn/gemm.cpp).
// With several CPU threads (attention_cpu_threads) a product worth splitting runs on the
// kernels' own thread pool (kernels/cpu/thread_pool.h), each thread a single-threaded sgemm on
// its share of C's rows (or columns, when C is wide and short), instead of on OpenBLAS's own
// pool: one pool for the whole step, whose idle threads sleep. Each element of C is the same
// sgemm dot product either way (the split is over C, never over k).
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(RINGTRAIN_HAS_ONEDNN)
#include <dlfcn.h>
#include <dnnl.h>
#endif

#include "kernels/cpu/blas_threads.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/thread_pool.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

// Below this many multiply-adds (4M, ~0.1 ms of one core) a product stays on one thread: waking the
// other threads costs more.
constexpr int64_t kSplitMacs = int64_t{1} << 22;

#if defined(RINGTRAIN_HAS_ONEDNN)
constexpr bool kHaveOneDnn = true;

// oneDNN threads each call with OpenMP, up to omp_get_max_threads(): a team beside our pool that
// would fight it for the cores. One thread per call instead, set once on each calling thread
// (the OpenMP thread count is per thread), through the OpenMP runtime oneDNN loaded.
void onednn_one_thread() {
  thread_local const bool done = [] {
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) set(1);
    return true;
  }();
  (void)done;
}
#else
constexpr bool kHaveOneDnn = false;
#endif

// RINGTRAIN_CPU_GEMM=openblas keeps OpenBLAS in a build with oneDNN (the tests run both; a
// benchmark compares them). Any other name but onednn, or onednn in a build without it, is an
// input error (first raised where the run log's line is made, on the main thread).
bool use_onednn() {
  static const bool yes = [] {
    const char* v = std::getenv("RINGTRAIN_CPU_GEMM");
    if (v == nullptr || *v == '\0') return kHaveOneDnn;
    if (std::strcmp(v, "openblas") == 0) return false;
    RT_INPUT_CHECK(std::strcmp(v, "onednn") == 0, "RINGTRAIN_CPU_GEMM='", v, "' is not one of onednn, openblas");
    RT_INPUT_CHECK(kHaveOneDnn, "RINGTRAIN_CPU_GEMM=onednn: this build has no oneDNN (install libdnnl-dev, reconfigure)");
    return true;
  }();
  return yes;
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc) {
#if defined(RINGTRAIN_HAS_ONEDNN)
  if (use_onednn()) {
    onednn_one_thread();
    const dnnl_status_t st =
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    RT_CHECK(st == dnnl_success, "gemm: oneDNN's sgemm failed (status ", static_cast<int>(st), ") m=", m, " n=", n,
             " k=", k);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

const char* cpu_gemm_library() { return use_onednn() ? "onednn" : "openblas"; }

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  RT_CHECK(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=", m, " n=", n, " k=", k);
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    // sgemm's k = 0 handling differs between BLAS builds; do the beta scaling here. beta = 0
    // overwrites (never multiplies), so uninitialized C cannot leak a NaN.
    for (int i = 0; i < m; ++i) {
      float* row = c + static_cast<int64_t>(i) * ldc;
      for (int j = 0; j < n; ++j) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
    }
    return;
  }
  const int threads = attention_cpu_threads();
  if (threads <= 1 || static_cast<int64_t>(m) * n * k < kSplitMacs) {
    sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Shares of C in multiples of 16 rows (columns): whole register blocks of the sgemm kernel.
  const bool by_rows = m >= n;
  const int extent = by_rows ? m : n;
  const int parts = std::min(threads, (extent + 15) / 16);
  const int share = ((extent + parts - 1) / parts + 15) / 16 * 16;
  cpu::BlasSingleThread blas_guard;
  auto part = [&](int p) {
    const int lo = p * share, len = std::min(extent, lo + share) - lo;
    if (len <= 0) return;
    if (by_rows)  // rows lo.. of C and of op(A)
      sgemm(trans_a, trans_b, len, n, k, alpha, trans_a ? a + lo : a + static_cast<int64_t>(lo) * lda, lda, b, ldb,
            beta, c + static_cast<int64_t>(lo) * ldc, ldc);
    else  // columns lo.. of C and of op(B)
      sgemm(trans_a, trans_b, m, len, k, alpha, a, lda, trans_b ? b + static_cast<int64_t>(lo) * ldb : b + lo, ldb,
            beta, c + lo, ldc);
  };
  cpu::parallel_run(parts, part);
}

void linear_forward(const float* x, const float* w, float* y, int n, int in, int out) {
  gemm(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n,
                     int in, int out, bool accumulate_dx) {
  // dx[n, in] = dy[n, out] W[out, in]
  if (dx != nullptr) gemm(false, false, n, in, out, 1.0f, dy, out, w, in,
                          accumulate_dx ? 1.0f : 0.0f, dx, in);
  // dw[out, in] += dy^T[out, n] x[n, in]
  if (dw != nullptr) gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

}  // namespace ringtrain
