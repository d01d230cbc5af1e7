// GEMM on the emulated device: the cuBLASLt contract computed on the CPU. Inputs are widened
// exactly from their storage type (bf16/f16 values are exact in fp32), multiplied and
// accumulated in fp32 by OpenBLAS, the epilogue alpha * AB + beta * C is applied in fp32 and
// rounded once to C's type. C is not read when beta == 0 (it may be poisoned).
#include <cblas.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <vector>

#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {

namespace {
float load(const void* p, DType t, size_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return 0.0f;
  }
}
void store(void* p, DType t, size_t i, float v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(p)[i] = v; break;
    case DType::kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v); break;
    case DType::kF16: static_cast<__half*>(p)[i] = __float2half(v); break;
    default: break;
  }
}
bool gemm_type(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }
}  // namespace

Status gemm(Stream stream, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void* a,
           DType a_type, int lda, const void* b, DType b_type, int ldb, float beta, void* c, DType c_type,
           int ldc) {
  if (m < 0 || n < 0 || k < 0 || !gemm_type(a_type) || !gemm_type(b_type) || !gemm_type(c_type)) {
    emu::set_last_error(Status::kInvalidValue, "gemm: negative size or unsupported type");
    return Status::kInvalidValue;
  }
  const int a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  const int b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  if (lda < a_cols || ldb < b_cols || ldc < n) {
    emu::set_last_error(Status::kInvalidValue, "gemm: leading dimension smaller than a row");
    return Status::kInvalidValue;
  }
  auto check = [&](const void* p, int rows, int ld, int cols, DType t, const char* what) -> bool {
    if (rows == 0 || cols == 0) return true;
    const size_t bytes = (static_cast<size_t>(rows - 1) * static_cast<size_t>(ld) + static_cast<size_t>(cols)) * dtype_size(t);
    std::string why;
    if (emu::device_range_ok(p, bytes, &why)) return true;
    emu::set_last_error(Status::kIllegalAddress, std::string("gemm: operand ") + what + " out of bounds: " + why);
    return false;
  };
  if (!check(a, a_rows, lda, a_cols, a_type, "A") || !check(b, b_rows, ldb, b_cols, b_type, "B") ||
      !check(c, m, ldc, n, c_type, "C"))
    return Status::kIllegalAddress;
  trace_note(stream, "gemm");
  emu::enqueue(stream, [=] {
    if (m == 0 || n == 0) return;
    std::vector<float> fa(static_cast<size_t>(a_rows) * a_cols), fb(static_cast<size_t>(b_rows) * b_cols),
        fc(static_cast<size_t>(m) * n, 0.0f);
    for (int i = 0; i < a_rows; ++i)
      for (int j = 0; j < a_cols; ++j) fa[static_cast<size_t>(i) * a_cols + j] = load(a, a_type, static_cast<size_t>(i) * lda + j);
    for (int i = 0; i < b_rows; ++i)
      for (int j = 0; j < b_cols; ++j) fb[static_cast<size_t>(i) * b_cols + j] = load(b, b_type, static_cast<size_t>(i) * ldb + j);
    if (k > 0)
      cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                  1.0f, fa.data(), a_cols, fb.data(), b_cols, 0.0f, fc.data(), n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        const size_t ci = static_cast<size_t>(i) * ldc + j;
        float v = alpha * fc[static_cast<size_t>(i) * n + j];
        if (beta != 0.0f) v += beta * load(c, c_type, ci);
        store(c, c_type, ci, v);
      }
  });
  return Status::kSuccess;
}

}  // namespace ringtrain::gpu
