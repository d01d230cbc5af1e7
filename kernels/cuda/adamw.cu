// AdamW on a CUDA device (kernels/adamw.h): the step on fp32 master weights and the sum of
// squares behind the global gradient norm.
//
// AdamW follows kernels/cpu/adamw.cpp (torch.optim.AdamW's order of operations): the scalars are
// formed on the host in double and rounded to fp32 once, exactly as the CPU does, and each
// product is rounded on its own (__fmul_rn/__fadd_rn: nvcc would otherwise contract them into
// FMAs), so a device step reproduces the CPU step's arithmetic.
//
// sum_squares is deterministic: a grid of blocks fixed by n (one per kSumSquaresPerBlock elements,
// at most kSumSquaresBlocks) each reduce a fixed grid-stride subset in double into work[block],
// then one block adds the partials in a fixed tree order. A small tensor's norm launches a few
// blocks, not kSumSquaresBlocks nearly idle ones; a large one fills the device.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

static_assert(kSumSquaresBlocks == kRowThreads, "the final sum_squares block reads one partial per thread");

// The host-formed scalars (outside the anonymous namespace: the kernel keeps external linkage,
// so the emulator can name it in fault reports).
struct OpsAdamWScalars {
  float decay;  // 1 - lr * wd
  bool apply_decay;
  float b1, one_m_b1, b2, one_m_b2;
  float step_size;  // lr / (1 - b1^t)
  float bc2_sqrt;   // sqrt(1 - b2^t)
  float eps;
};

// static-check: ops_adamw_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_adamw_kernel(OpsAdamWScalars s, float* param, const float* grad,
                                                              float* m, float* v, int64_t n) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = grad[i];
    float p = param[i];
    if (s.apply_decay) p = p * s.decay;
    const float mi = __fadd_rn(__fmul_rn(m[i], s.b1), __fmul_rn(s.one_m_b1, g));
    const float vi = __fadd_rn(__fmul_rn(v[i], s.b2), __fmul_rn(__fmul_rn(s.one_m_b2, g), g));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(sqrtf(vi) / s.bc2_sqrt, s.eps);
    param[i] = __fadd_rn(p, __fmul_rn(-s.step_size, mi / denom));
  }
}

// static-check: ops_sum_squares_partial_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_sum_squares_partial_kernel(const float* x, int64_t n, double* work) {
  RT_SHARED(double, red, [kRowWarps]);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  double acc = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double xi = x[i];
    acc += xi * xi;
  }
  acc = block_reduce(acc, red, SumOp{});
  if (threadIdx.x == 0) work[blockIdx.x] = acc;
}

// static-check: ops_sum_squares_final_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_sum_squares_final_kernel(const double* work, int parts, double* out) {
  RT_SHARED(double, red, [kRowWarps]);
  const double total = block_reduce(static_cast<int>(threadIdx.x) < parts ? work[threadIdx.x] : 0.0, red, SumOp{});
  if (threadIdx.x == 0) *out = total;
}

gpu::Status adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v, int64_t n,
                       gpu::Stream stream) {
  RT_CHECK(a.step >= 1, "cuda::adamw_step: step is 1-based, got ", a.step);
  RT_CHECK(n >= 0, "cuda::adamw_step: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  // The CPU's scalars, expression for expression (kernels/cpu/adamw.cpp).
  const double lr = a.lr, b1 = a.beta1, b2 = a.beta2, wd = a.weight_decay;
  const double t = static_cast<double>(a.step);
  OpsAdamWScalars s{};
  s.decay = static_cast<float>(1.0 - lr * wd);
  s.apply_decay = wd != 0.0;
  s.b1 = static_cast<float>(b1);
  s.one_m_b1 = static_cast<float>(1.0 - b1);
  s.b2 = static_cast<float>(b2);
  s.one_m_b2 = static_cast<float>(1.0 - b2);
  s.step_size = static_cast<float>(lr / (1.0 - std::pow(b1, t)));
  s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
  s.eps = a.eps;
  return gpu::launch(ops_adamw_kernel, elem_blocks(n), kElemThreads, 0, stream, s, param, grad, m, v, n);
}

gpu::Status sum_squares(const float* x, int64_t n, double* out, double* work, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::sum_squares: negative size ", n);
  if (n == 0) return gpu::memset_async(out, 0, sizeof(double), stream);  // +0.0 is all zero bits
  constexpr int64_t kSumSquaresPerBlock = 8 * kRowThreads;
  const int parts = static_cast<int>(std::min<int64_t>(kSumSquaresBlocks, (n + kSumSquaresPerBlock - 1) / kSumSquaresPerBlock));
  gpu::Status s = gpu::launch(ops_sum_squares_partial_kernel, parts, kRowThreads, 0, stream, x, n, work);
  if (s != gpu::Status::kSuccess) return s;
  return gpu::launch(ops_sum_squares_final_kernel, 1, kRowThreads, 0, stream, work, parts, out);
}

}  // namespace ringtrain::cuda
