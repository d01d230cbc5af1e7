// Small kernels for the runtime and emulator-behaviour tests.
#include "tests/gpu/kernels/runtime_kernels.h"

#include "src/device/kernel.h"

namespace ringtrain::test {

__global__ void touch_smem_kernel(size_t n, float* out) {
  float* s = gpu::dynamic_smem<float>();
  if (threadIdx.x == 0 && n > 0) {
    s[n - 1] = 3.0f;
    out[0] = s[n - 1];
  }
}
gpu::Status launch_touch_smem(dim3 block, size_t smem_bytes, float* out) {
  return gpu::launch(touch_smem_kernel, 1, block, smem_bytes, nullptr, smem_bytes / sizeof(float), out);
}
gpu::Status raise_touch_smem_limit(int bytes) { return gpu::func_set_max_dynamic_smem(touch_smem_kernel, bytes); }

__global__ void touch_static_and_dynamic_smem_kernel(size_t n, float* out) {
  RT_SHARED(float, fixed, [4096]);
  float* s = gpu::dynamic_smem<float>();
  if (threadIdx.x == 0 && n > 0) {
    fixed[4095] = 1.0f;
    s[n - 1] = 2.0f;
    out[0] = fixed[4095] + s[n - 1];
  }
}
gpu::Status launch_touch_static_and_dynamic_smem(size_t smem_bytes, float* out) {
  return gpu::launch(touch_static_and_dynamic_smem_kernel, 1, 32, smem_bytes, nullptr, smem_bytes / sizeof(float), out);
}
gpu::Status raise_static_and_dynamic_smem_limit(int bytes) {
  return gpu::func_set_max_dynamic_smem(touch_static_and_dynamic_smem_kernel, bytes);
}

__global__ void early_exit_barrier_kernel(int* out) {
  int* s = gpu::dynamic_smem<int>();
  const int t = threadIdx.x;
  s[t] = t;
  if (t % 2 == 1) return;  // exited threads leave the barrier's count
  __syncthreads();
  out[t / 2] = s[t] + s[t + 1];
}
gpu::Status launch_early_exit_barrier(int* out) {
  return gpu::launch(early_exit_barrier_kernel, 1, 64, 64 * sizeof(int), nullptr, out);
}

__global__ void barrier_reductions_kernel(int* out) {
  const int t = threadIdx.x;
  const int a = __syncthreads_count(t % 3 == 0);
  const int b = __syncthreads_or(t == 95);
  const int c = __syncthreads_and(1);
  const int d = __syncthreads_and(t != 40);
  if (t == 7) {
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = d;
  }
}
gpu::Status launch_barrier_reductions(int* out) { return gpu::launch(barrier_reductions_kernel, 1, 96, 0, nullptr, out); }

__global__ void deadlock_kernel() {
  if (threadIdx.x == 0)
    __syncthreads();
  else
    __syncwarp();
}
gpu::Status launch_deadlock() { return gpu::launch(deadlock_kernel, 1, 32, 0, nullptr); }

__global__ void bad_shuffle_mask_kernel() {
  (void)__shfl_sync(0xfffffffeu, 1, 0);  // lane 0 is not in its own mask
}
gpu::Status launch_bad_shuffle_mask() { return gpu::launch(bad_shuffle_mask_kernel, 1, 32, 0, nullptr); }

__global__ void ldmatrix_from_global_kernel(const uint16_t* g) {
  uint32_t r[1];
  gpu::ldmatrix_x1(r, g + (threadIdx.x % 8) * 8);
}
gpu::Status launch_ldmatrix_from_global(const uint16_t* global) {
  return gpu::launch(ldmatrix_from_global_kernel, 1, 32, 0, nullptr, global);
}

__global__ void cp_async_from_kernel(const float* src, int offset) {
  float* s = gpu::dynamic_smem<float>();
  if (threadIdx.x == 0) {
    gpu::cp_async<16>(s, src + offset);
    gpu::cp_async_commit();
    gpu::cp_async_wait<0>();
  }
}
gpu::Status launch_cp_async_from(const float* src, int offset) {
  return gpu::launch(cp_async_from_kernel, 1, 32, 64, nullptr, src, offset);
}

__global__ void iota3d_kernel(int* out) {
  const int tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int i = bx * blockDim.x * blockDim.y * blockDim.z + tx;
  out[i] = i;
}
gpu::Status launch_iota3d(dim3 grid, dim3 block, int* out) { return gpu::launch(iota3d_kernel, grid, block, 0, nullptr, out); }

// A template with a named constant bound, as the flash kernels are: the bound must survive
// instantiation. (A bound that depends on a template parameter is refused by clang's
// patchable_function_entry, which the emulation build keeps the bound in.)
constexpr int kBoundedThreads = 96;
template <typename T>
__global__ void __launch_bounds__(kBoundedThreads) bounded_iota_kernel(T* out) {
  out[threadIdx.x] = static_cast<T>(threadIdx.x);
}
gpu::Status launch_bounded_iota(int threads, int* out) {
  return gpu::launch(bounded_iota_kernel<int>, 1, threads, 0, nullptr, out);
}

// 96 floats live through a loop whose every step reads a neighbour's value: ptxas gives each
// thread more than 64 registers (104 on sm_80, 105 on sm_90a with nvcc 13.0), so a
// block of 1024 threads needs more than the 65,536 registers of the register file; a block
// of 256 fits any kernel (at most 255 registers per thread). No __launch_bounds__: ptxas is
// free to use them.
constexpr int kLiveValues = 96;
__global__ void register_heavy_kernel(const float* in, float* out, int rounds) {
  float v[kLiveValues];
  for (int i = 0; i < kLiveValues; ++i) v[i] = in[i];
  for (int r = 0; r < rounds; ++r)
    for (int i = 0; i < kLiveValues; ++i) v[i] = v[i] * v[(i + 1) % kLiveValues] + in[r % kLiveValues];
  float s = 0.0f;
  for (int i = 0; i < kLiveValues; ++i) s += v[i] * static_cast<float>(i + 1);
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}
gpu::Status launch_register_heavy(int threads, const float* in, float* out) {
  return gpu::launch(register_heavy_kernel, 1, threads, 0, nullptr, in, out, 2);
}

}  // namespace ringtrain::test
