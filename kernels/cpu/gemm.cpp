// GEMM on OpenBLAS. Row-major throughout; the transposes are flags to sgemm, never copies.

#include <cblas.h>

#include "kernels/cpu/ops_cpu.h"
#include "src/core/error.h"

namespace ringtrain {

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
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
