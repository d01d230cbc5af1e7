// RMSNorm on a CUDA device (kernels/rmsnorm.h): the statistics in double as the CPU's
// kernels/cpu/rmsnorm.cpp. The weight gradient gives each element to exactly one thread, which
// adds the rows in a fixed order (see the dw kernels), so the bits never depend on the schedule.
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {
constexpr int kColThreads = 32;   // dw kernels: one thread per column
constexpr int kDwBatch = 8;       // rows per batch of loads in the dw kernel
constexpr int kDwChunkRows = 64;  // rows per partial sum of dw (stage 1)
}  // namespace

// static-check: ops_rmsnorm_fwd_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_rmsnorm_fwd_kernel(int dim, float eps, const float* x,
                                                                       const float* w, float* y, float* rstd) {
  RT_SHARED(double, red, [kRowWarps]);
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  double ss = 0.0;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) {
    const double v = xr[j];
    ss += v * v;
  }
  ss = block_reduce(ss, red, SumOp{});
  const float var = static_cast<float>(ss / static_cast<double>(dim));
  const float rs = 1.0f / sqrtf(var + eps);
  if (threadIdx.x == 0 && rstd != nullptr) rstd[r] = rs;
  float* yr = y + r * dim;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) yr[j] = w[j] * (xr[j] * rs);
}

// dx_j = r (w_j dy_j) - x_j r^3 / D * sum_k w_k dy_k x_k
// static-check: ops_rmsnorm_bwd_dx_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_rmsnorm_bwd_dx_kernel(int dim, const float* dy, const float* x,
                                                                          const float* w, const float* rstd,
                                                                          float* dx) {
  RT_SHARED(double, red, [kRowWarps]);
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  const float* dyr = dy + r * dim;
  const float rs = rstd[r];
  double dot = 0.0;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) dot += static_cast<double>(w[j]) * dyr[j] * xr[j];
  dot = block_reduce(dot, red, SumOp{});
  const double rsd = rs;
  const float c = static_cast<float>(dot * rsd * rsd * rsd / static_cast<double>(dim));
  float* dxr = dx + r * dim;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) dxr[j] = rs * (w[j] * dyr[j]) - xr[j] * c;
}

// dw_j += sum over rows of dy_rj x_rj rstd_r, in two fixed-order stages so that the columns of
// a narrow model still fill the device: stage 1, thread (column j, chunk c) sums the rows of
// chunk c (kDwChunkRows rows, ascending) into work[c][j]; stage 2, one thread per column adds
// the chunks in ascending order to dw_j. The order depends on the shape only: bitwise the same
// on every run and schedule.
// static-check: ops_rmsnorm_bwd_dw_chunk_kernel smem=0
__global__ void __launch_bounds__(kColThreads) ops_rmsnorm_bwd_dw_chunk_kernel(int rows, int dim, const float* dy,
                                                                                const float* x, const float* rstd,
                                                                                float* work) {
  const int j = blockIdx.x * kColThreads + threadIdx.x;
  if (j >= dim) return;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * kDwChunkRows;
  const int64_t end = begin + kDwChunkRows < rows ? begin + kDwChunkRows : rows;
  float acc = 0.0f;
  // kDwBatch rows' terms loaded together (independent loads in flight), added in row order.
  int64_t r = begin;
  for (; r + kDwBatch <= end; r += kDwBatch) {
    float term[kDwBatch];
    for (int k = 0; k < kDwBatch; ++k) term[k] = dy[(r + k) * dim + j] * (x[(r + k) * dim + j] * rstd[r + k]);
    for (int k = 0; k < kDwBatch; ++k) acc += term[k];
  }
  for (; r < end; ++r) acc += dy[r * dim + j] * (x[r * dim + j] * rstd[r]);
  work[static_cast<int64_t>(blockIdx.y) * dim + j] = acc;
}

// static-check: ops_rmsnorm_bwd_dw_sum_kernel smem=0
__global__ void __launch_bounds__(kColThreads) ops_rmsnorm_bwd_dw_sum_kernel(int chunks, int dim, const float* work,
                                                                              float* dw) {
  const int j = blockIdx.x * kColThreads + threadIdx.x;
  if (j >= dim) return;
  float acc = dw[j];
  for (int c = 0; c < chunks; ++c) acc += work[static_cast<int64_t>(c) * dim + j];
  dw[j] = acc;
}

int64_t rmsnorm_backward_work_elems(int rows, int dim) {
  return static_cast<int64_t>((rows + kDwChunkRows - 1) / kDwChunkRows) * dim;
}

gpu::Status rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd,
                            gpu::Stream stream) {
  RT_CHECK(a.rows >= 0 && a.dim >= 0, "cuda::rmsnorm_forward: bad shape ", a.rows, " x ", a.dim);
  if (a.rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_rmsnorm_fwd_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0, stream, a.dim, a.eps, x,
                     w, y, rstd);
}

gpu::Status rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                             const float* rstd, float* dx, float* dw, float* work, gpu::Stream stream) {
  RT_CHECK(a.rows >= 0 && a.dim >= 0, "cuda::rmsnorm_backward: bad shape ", a.rows, " x ", a.dim);
  if (a.rows == 0 || a.dim == 0) return gpu::Status::kSuccess;
  if (dx != nullptr) {
    const gpu::Status s = gpu::launch(ops_rmsnorm_bwd_dx_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0,
                                      stream, a.dim, dy, x, w, rstd, dx);
    if (s != gpu::Status::kSuccess) return s;
  }
  if (dw == nullptr) return gpu::Status::kSuccess;
  RT_CHECK(work != nullptr, "cuda::rmsnorm_backward: dw needs a work buffer of rmsnorm_backward_work_elems floats");
  const int chunks = (a.rows + kDwChunkRows - 1) / kDwChunkRows;
  const unsigned col_blocks = static_cast<unsigned>((a.dim + kColThreads - 1) / kColThreads);
  RT_CHECK(chunks <= 65535, "cuda::rmsnorm_backward: ", a.rows, " rows exceed ", 65535 * kDwChunkRows);
  const gpu::Status s = gpu::launch(ops_rmsnorm_bwd_dw_chunk_kernel, dim3(col_blocks, static_cast<unsigned>(chunks)),
                                    kColThreads, 0, stream, a.rows, a.dim, dy, x, rstd, work);
  if (s != gpu::Status::kSuccess) return s;
  return gpu::launch(ops_rmsnorm_bwd_dw_sum_kernel, col_blocks, kColThreads, 0, stream, chunks, a.dim,
                     static_cast<const float*>(work), dw);
}
}  // namespace ringtrain::cuda
