// SwiGLU on a CUDA device (kernels/cpu/ops_cpu.h's swiglu contract): elementwise, so every
// result is independent of the thread order.
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {
// sigmoid(g) = 1 / (1 + e^-g), as the CPU kernel (kernels/cpu/swiglu.cpp) with the device's
// accurate expf (not __expf): the two agree within an ulp or two.
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }
}  // namespace

// static-check: ops_swiglu_fwd_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_swiglu_fwd_kernel(const float* gate, const float* up, float* h,
                                                                       int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float g = gate[i];
    h[i] = (g * sigmoid(g)) * up[i];
  }
}

// d silu/dg = sig(g) (1 + g (1 - sig(g)))
// static-check: ops_swiglu_bwd_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_swiglu_bwd_kernel(const float* dh, const float* gate, const float* up,
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

gpu::Status swiglu_forward(const float* gate, const float* up, float* h, int64_t n, gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::swiglu_forward: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_swiglu_fwd_kernel, elem_blocks(n), kElemThreads, 0, stream, gate, up, h, n);
}

gpu::Status swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup, int64_t n,
                            gpu::Stream stream) {
  RT_CHECK(n >= 0, "cuda::swiglu_backward: negative size ", n);
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_swiglu_bwd_kernel, elem_blocks(n), kElemThreads, 0, stream, dh, gate, up, dgate, dup, n);
}

}  // namespace ringtrain::cuda
