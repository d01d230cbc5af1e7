// The backend's elementwise CUDA operations (kernels/backend.h): fill, add, scale, bf16 casts,
// the Ulysses [A][B][C] -> [B][A][C] packing and its kv-head gather/sum. No reductions but
// sum_heads' fixed-order sum, so every result is independent of the thread order.
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

// static-check: ops_fill_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = value;
}

// static-check: ops_add_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_add_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] += src[i];
}

// static-check: ops_scale_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_scale_kernel(float* x, float s, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] *= s;
}

// static-check: ops_cast_to_bf16_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_cast_to_bf16_kernel(const float* x, __nv_bfloat16* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __float2bfloat16_rn(x[i]);
}

// static-check: ops_cast_from_bf16_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_cast_from_bf16_kernel(const __nv_bfloat16* x, float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __bfloat162float(x[i]);
}

// dst[b][a][c] = src[a][b][c]; one thread per destination element (coalesced writes, reads
// contiguous within each run of C).
// static-check: ops_swap01_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_swap01_kernel(const float* src, float* dst, int64_t A, int64_t B,
                                                                   int64_t C) {
  const int64_t n = A * B * C;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t c = i % C, ba = i / C;
    const int64_t a = ba % A, b = ba / A;
    dst[i] = src[(a * B + b) * C + c];
  }
}

// dst[r][j][c] = src[r][map[j]][c]; one thread per destination element.
// static-check: ops_gather_heads_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_gather_heads_kernel(const float* src, float* dst, int64_t rows,
                                                                        int src_heads, int dst_heads, int d,
                                                                        const int32_t* map) {
  const int64_t n = rows * dst_heads * d;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t c = i % d, rj = i / d;
    const int64_t j = rj % dst_heads, r = rj / dst_heads;
    dst[i] = src[(r * src_heads + map[j]) * d + c];
  }
}

// dst[r][h][c] = sum over j (ascending) with map[j] == h of src[r][j][c]: one thread per
// destination element, so the order of the sum is fixed (the few duplicates of a head).
// static-check: ops_sum_heads_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_sum_heads_kernel(const float* src, float* dst, int64_t rows,
                                                                     int src_heads, int dst_heads, int d,
                                                                     const int32_t* map) {
  const int64_t n = rows * dst_heads * d;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t c = i % d, rh = i / d;
    const int64_t h = rh % dst_heads, r = rh / dst_heads;
    float acc = 0.0f;
    for (int j = 0; j < src_heads; ++j)
      if (map[j] == h) acc += src[(r * src_heads + j) * d + c];
    dst[i] = acc;
  }
}

gpu::Status fill(float* x, float value, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::fill: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_fill_kernel, elem_blocks(n), kElemThreads, 0, stream, x, value, n);
}

gpu::Status add_inplace(float* dst, const float* src, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::add_inplace: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_add_kernel, elem_blocks(n), kElemThreads, 0, stream, dst, src, n);
}

gpu::Status scale_inplace(float* x, float s, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::scale_inplace: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_scale_kernel, elem_blocks(n), kElemThreads, 0, stream, x, s, n);
}

gpu::Status cast_to_bf16(const float* x, __nv_bfloat16* y, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::cast_to_bf16: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_cast_to_bf16_kernel, elem_blocks(n), kElemThreads, 0, stream, x, y, n);
}

gpu::Status cast_from_bf16(const __nv_bfloat16* x, float* y, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::cast_from_bf16: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_cast_from_bf16_kernel, elem_blocks(n), kElemThreads, 0, stream, x, y, n);
}

gpu::Status swap01(const float* src, float* dst, int64_t A, int64_t B, int64_t C, gpu::Stream stream) {
  RT_CHECK(A >= 0 && B >= 0 && C >= 0, "cuda::swap01: negative extent ", A, " x ", B, " x ", C);
  const int64_t n = A * B * C;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_swap01_kernel, elem_blocks(n), kElemThreads, 0, stream, src, dst, A, B, C);
}

gpu::Status gather_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                         const int32_t* map, gpu::Stream stream) {
  RT_CHECK(rows >= 0 && src_heads > 0 && dst_heads >= 0 && d > 0, "cuda::gather_heads: bad extents");
  const int64_t n = rows * dst_heads * d;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_gather_heads_kernel, elem_blocks(n), kElemThreads, 0, stream, src, dst, rows, src_heads,
                     dst_heads, d, map);
}

gpu::Status sum_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                      const int32_t* map, gpu::Stream stream) {
  RT_CHECK(rows >= 0 && src_heads >= 0 && dst_heads > 0 && d > 0, "cuda::sum_heads: bad extents");
  const int64_t n = rows * dst_heads * d;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_sum_heads_kernel, elem_blocks(n), kElemThreads, 0, stream, src, dst, rows, src_heads,
                     dst_heads, d, map);
}

}  // namespace ringtrain::cuda
