// GEMM, row-major: C[m,n] = alpha * op(A) op(B) + beta * C, op = transpose when asked.
// CPU: OpenBLAS sgemm (transposes are free there). Linear layers use the Hugging Face weight
// layout W[out, in], so y = x W^T and the backward products are plain GEMMs with transposes.
#pragma once

namespace ringtrain {

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);

// y[n, out] = x[n, in] W[out, in]^T
void linear_forward(const float* x, const float* w, float* y, int n, int in, int out);
// dx[n, in] (= or += when accumulate_dx) dy W;  dw[out, in] += dy^T x.  dx may be null.
void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n,
                     int in, int out, bool accumulate_dx = false);

}  // namespace ringtrain
