// GEMM on a real device: cuBLAS (GemmEx, fp32 compute) on the caller's stream. Row-major C = op(A) op(B)
// is computed as the column-major C^T = op(B)^T op(A)^T, which needs no copies.
#include <cublas_v2.h>

#include <string>

#include "src/device/gpu.h"

namespace ringtrain::gpu {

namespace {
cudaDataType_t cuda_type(DType t, bool* ok) {
  switch (t) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF16: return CUDA_R_16F;
    default: *ok = false; return CUDA_R_32F;
  }
}
cublasHandle_t handle() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t x = nullptr;
    if (cublasCreate(&x) != CUBLAS_STATUS_SUCCESS) ringtrain::fault("cublasCreate failed");
    return x;
  }();
  return h;
}
}  // namespace

Status gemm(Stream stream, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a, DType a_type,
            int lda, const void* b, DType b_type, int ldb, float beta, void* c, DType c_type, int ldc) {
  bool ok = a_type == b_type;
  const cudaDataType_t at = cuda_type(a_type, &ok), bt = cuda_type(b_type, &ok), ct = cuda_type(c_type, &ok);
  if (!ok) return Status::kNotSupported;
  trace_note(stream, "gemm");
  cublasHandle_t h = handle();
  if (cublasSetStream(h, stream) != CUBLAS_STATUS_SUCCESS) return Status::kUnknown;
  const cublasStatus_t s =
      cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, bt,
                   ldb, a, at, lda, &beta, c, ct, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  return s == CUBLAS_STATUS_SUCCESS ? Status::kSuccess : Status::kInvalidValue;
}

}  // namespace ringtrain::gpu
