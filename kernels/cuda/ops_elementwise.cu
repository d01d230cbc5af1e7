// Elementwise CUDA operations of kernels/cuda/ops_cuda.h: fill, add, scale, bf16 casts, SwiGLU
// the Ulysses [A][B][C] -> [B][A][C] packing and its kv-head gather/sum. Grid-stride loops with 64-bit indices, 256
// threads per block, at most kMaxBlocks blocks; nothing is launched for zero elements. No
// reductions, so every result is independent of the thread order.
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

// Blocks for n elements (n > 0): one element per thread up to kMaxBlocks, then grid-stride.
unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < kMaxBlocks ? b : kMaxBlocks);
}

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// sigmoid(g) = 1 / (1 + e^-g), as the CPU kernel (kernels/cpu/swiglu.cpp) with the device's
// accurate expf (not __expf): the two agree within an ulp or two.
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

}  // namespace

// static-check: ops_fill_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = value;
}

// static-check: ops_add_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_add_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] += src[i];
}

// static-check: ops_scale_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_scale_kernel(float* x, float s, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] *= s;
}

// static-check: ops_cast_to_bf16_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_cast_to_bf16_kernel(const float* x, __nv_bfloat16* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __float2bfloat16_rn(x[i]);
}

// static-check: ops_cast_from_bf16_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_cast_from_bf16_kernel(const __nv_bfloat16* x, float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __bfloat162float(x[i]);
}

// static-check: ops_swiglu_fwd_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_swiglu_fwd_kernel(const float* gate, const float* up, float* h,
                                                                   int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float g = gate[i];
    h[i] = (g * sigmoid(g)) * up[i];
  }
}

// d silu/dg = sig(g) (1 + g (1 - sig(g)))
// static-check: ops_swiglu_bwd_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_swiglu_bwd_kernel(const float* dh, const float* gate, const float* up,
                                                                   float* dgate, float* dup, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float g = gate[i];
    const float sig = sigmoid(g);
    const float silu = g * sig;
    const float d = dh[i];
    dgate[i] = d * up[i] * (sig * (1.0f + g * (1.0f - sig)));
    dup[i] = d * silu;
  }
}

// dst[b][a][c] = src[a][b][c]; one thread per destination element (coalesced writes, reads
// contiguous within each run of C).
// static-check: ops_swap01_kernel smem=0
__global__ void __launch_bounds__(kThreads) ops_swap01_kernel(const float* src, float* dst, int64_t A, int64_t B,
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
__global__ void __launch_bounds__(kThreads) ops_gather_heads_kernel(const float* src, float* dst, int64_t rows,
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
__global__ void __launch_bounds__(kThreads) ops_sum_heads_kernel(const float* src, float* dst, int64_t rows,
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
  return gpu::launch(ops_fill_kernel, blocks_for(n), kThreads, 0, stream, x, value, n);
}

gpu::Status add_inplace(float* dst, const float* src, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::add_inplace: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_add_kernel, blocks_for(n), kThreads, 0, stream, dst, src, n);
}

gpu::Status scale_inplace(float* x, float s, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::scale_inplace: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_scale_kernel, blocks_for(n), kThreads, 0, stream, x, s, n);
}

gpu::Status cast_to_bf16(const float* x, __nv_bfloat16* y, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::cast_to_bf16: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_cast_to_bf16_kernel, blocks_for(n), kThreads, 0, stream, x, y, n);
}

gpu::Status cast_from_bf16(const __nv_bfloat16* x, float* y, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::cast_from_bf16: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_cast_from_bf16_kernel, blocks_for(n), kThreads, 0, stream, x, y, n);
}

gpu::Status swiglu_forward(const float* gate, const float* up, float* h, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::swiglu_forward: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_swiglu_fwd_kernel, blocks_for(n), kThreads, 0, stream, gate, up, h, n);
}

gpu::Status swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup, int64_t n,
                            gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::swiglu_backward: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_swiglu_bwd_kernel, blocks_for(n), kThreads, 0, stream, dh, gate, up, dgate, dup, n);
}

gpu::Status swap01(const float* src, float* dst, int64_t A, int64_t B, int64_t C, gpu::Stream stream) {
  RT_CHECK(A >= 0 && B >= 0 && C >= 0, "cuda::swap01: negative extent ", A, " x ", B, " x ", C);
  const int64_t n = A * B * C;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_swap01_kernel, blocks_for(n), kThreads, 0, stream, src, dst, A, B, C);
}

gpu::Status gather_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                         const int32_t* map, gpu::Stream stream) {
  RT_CHECK(rows >= 0 && src_heads > 0 && dst_heads >= 0 && d > 0, "cuda::gather_heads: bad extents");
  const int64_t n = rows * dst_heads * d;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_gather_heads_kernel, blocks_for(n), kThreads, 0, stream, src, dst, rows, src_heads,
                     dst_heads, d, map);
}

gpu::Status sum_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                      const int32_t* map, gpu::Stream stream) {
  RT_CHECK(rows >= 0 && src_heads >= 0 && dst_heads > 0 && d > 0, "cuda::sum_heads: bad extents");
  const int64_t n = rows * dst_heads * d;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_sum_heads_kernel, blocks_for(n), kThreads, 0, stream, src, dst, rows, src_heads,
                     dst_heads, d, map);
}

}  // namespace ringtrain::cuda
