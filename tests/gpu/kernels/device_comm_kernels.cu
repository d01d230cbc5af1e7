// Kernels for the device communicator tests.
#include "tests/gpu/kernels/device_comm_kernels.h"

#include "src/device/kernel.h"

namespace ringtrain::test {

__global__ void axpb_kernel(float* x, size_t n, float a, float b) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] * a + b;
}

gpu::Status launch_axpb(float* x, size_t n, float a, float b, gpu::Stream stream) {
  if (n == 0) return gpu::Status::kSuccess;
  const unsigned threads = 128;
  const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
  return gpu::launch(axpb_kernel, blocks, threads, 0, stream, x, n, a, b);
}

}  // namespace ringtrain::test
