// Small kernels for the runtime and emulator-behaviour tests (tests/gpu/test_runtime.cpp).
#pragma once

#include "src/device/gpu.h"

namespace ringtrain::test {

// out[0] = the last element of `smem_bytes` of dynamic shared memory after writing it.
gpu::Status launch_touch_smem(dim3 block, size_t smem_bytes, float* out);
// Raises the shared-memory attribute of the kernel launch_touch_smem uses.
gpu::Status raise_touch_smem_limit(int bytes);
// The same with 16 KiB of static shared memory besides the dynamic `smem_bytes`.
gpu::Status launch_touch_static_and_dynamic_smem(size_t smem_bytes, float* out);
gpu::Status raise_static_and_dynamic_smem_limit(int bytes);
// Odd threads return before the barrier; even threads sum their neighbours after it.
gpu::Status launch_early_exit_barrier(int* out);
// out[0..3] = __syncthreads_count(t % 3 == 0), __syncthreads_or(t == 95), __syncthreads_and(1),
// __syncthreads_and(t != 40) over a block of 96 threads.
gpu::Status launch_barrier_reductions(int* out);
// A lane waits at __syncthreads while its warp waits for it in __syncwarp: a deadlock.
gpu::Status launch_deadlock();
// A shuffle whose mask leaves out the calling lane.
gpu::Status launch_bad_shuffle_mask();
// ldmatrix given a global-memory address.
gpu::Status launch_ldmatrix_from_global(const uint16_t* global);
// cp.async reading 16 bytes at `src + offset` floats.
gpu::Status launch_cp_async_from(const float* src, int offset);
// out[i] = i for i < n, 3-D blocks and grid (checks threadIdx/blockIdx linearization).
gpu::Status launch_iota3d(dim3 grid, dim3 block, int* out);
// A kernel declared __launch_bounds__(96), one block of `threads`.
gpu::Status launch_bounded_iota(int threads, int* out);
// One block of `threads` of a kernel that needs more than 64 registers per thread (in: 96 floats).
gpu::Status launch_register_heavy(int threads, const float* in, float* out);

}  // namespace ringtrain::test
