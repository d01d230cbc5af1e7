// Row reductions through the GPU layer: RMSNorm with one warp per row (shuffle reduction),
// softmax with one block per row (shuffles, then the per-warp partials through shared memory).
#include "src/device/kernel.h"
#include "tests/gpu/samples/samples.h"

namespace ringtrain::test {

namespace {
constexpr int kRowsPerBlock = 4;  // 4 warps, one row each

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
}  // namespace

// static-check: rmsnorm_kernel smem=0
__global__ void rmsnorm_kernel(const float* x, const float* w, float* y, int rows, int cols, float eps) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together
  const float* xr = x + static_cast<size_t>(row) * cols;
  float ss = 0.0f;
  for (int c = lane; c < cols; c += 32) ss += xr[c] * xr[c];
  ss = warp_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(cols) + eps);
  float* yr = y + static_cast<size_t>(row) * cols;
  for (int c = lane; c < cols; c += 32) yr[c] = xr[c] * inv * w[c];
}

gpu::Status sample_rmsnorm(const float* x, const float* w, float* y, int rows, int cols, float eps, gpu::Stream s) {
  const int blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return gpu::launch(rmsnorm_kernel, blocks, 32 * kRowsPerBlock, 0, s, x, w, y, rows, cols, eps);
}

// static-check: softmax_kernel smem=64
template <bool kSkipBarrier>
__global__ void softmax_kernel(const float* x, float* y, int cols) {
  RT_SHARED(float, partial, [8]);
  RT_SHARED(float, total, [8]);
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const float* xr = x + static_cast<size_t>(blockIdx.x) * cols;
  float m = -INFINITY;
  for (int c = t; c < cols; c += 256) m = fmaxf(m, xr[c]);
  m = warp_max(m);
  if (lane == 0) partial[warp] = m;
  if constexpr (!kSkipBarrier) __syncthreads();
  m = partial[0];
  for (int i = 1; i < 8; ++i) m = fmaxf(m, partial[i]);
  float s = 0.0f;
  for (int c = t; c < cols; c += 256) s += __expf(xr[c] - m);
  s = warp_sum(s);
  if (lane == 0) total[warp] = s;
  __syncthreads();
  s = 0.0f;
  for (int i = 0; i < 8; ++i) s += total[i];
  float* yr = y + static_cast<size_t>(blockIdx.x) * cols;
  for (int c = t; c < cols; c += 256) yr[c] = __expf(xr[c] - m) / s;
}

gpu::Status sample_softmax(const float* x, float* y, int rows, int cols, bool skip_barrier, gpu::Stream s) {
  return skip_barrier ? gpu::launch(softmax_kernel<true>, rows, 256, 0, s, x, y, cols)
                      : gpu::launch(softmax_kernel<false>, rows, 256, 0, s, x, y, cols);
}

__global__ void read_past_end_kernel(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i + 1];
}
gpu::Status sample_read_past_end(const float* in, float* out, int n, gpu::Stream s) {
  return gpu::launch(read_past_end_kernel, (n + 127) / 128, 128, 0, s, in, out, n);
}

__global__ void write_past_end_kernel(float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = 1.0f;
}
gpu::Status sample_write_past_end(float* out, int n, gpu::Stream s) {
  return gpu::launch(write_past_end_kernel, (n + 128) / 128, 128, 0, s, out, n);
}

__global__ void smem_read_past_end_kernel(float* out, int n) {
  float* s = gpu::dynamic_smem<float>();
  const int t = threadIdx.x;
  for (int i = t; i < n; i += blockDim.x) s[i] = static_cast<float>(i);
  __syncthreads();
  if (t == 0) out[0] = s[n];
}
gpu::Status sample_smem_read_past_end(float* out, int n, gpu::Stream s) {
  return gpu::launch(smem_read_past_end_kernel, 1, 64, static_cast<size_t>(n) * sizeof(float), s, out, n);
}

}  // namespace ringtrain::test
