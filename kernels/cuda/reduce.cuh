// Launch shapes and block reductions shared by the op kernels of kernels/cuda (everything but
// attention, which has its own tiling).
//
// Determinism: no float atomics anywhere. A row reduction uses one block per row: each thread
// accumulates a fixed strided subset of the row in ascending order, each warp combines by an
// xor butterfly, and every thread then adds the per-warp partials from shared memory in warp
// order, so the bits never depend on the thread schedule.
#pragma once

#include <cstdint>

#include "src/device/kernel.h"

namespace ringtrain::cuda {
namespace {

// Elementwise kernels: grid-stride loops with 64-bit indices, kElemThreads threads per block,
// one element per thread up to kMaxElemBlocks blocks; nothing is launched for zero elements.
constexpr int kElemThreads = 256;
constexpr int64_t kMaxElemBlocks = 4096;

// Row kernels: one block of kRowThreads per row.
constexpr int kRowThreads = 256;
constexpr int kRowWarps = kRowThreads / 32;

// Blocks for n > 0 elements.
inline unsigned elem_blocks(int64_t n) {
  const int64_t b = (n + kElemThreads - 1) / kElemThreads;
  return static_cast<unsigned>(b < kMaxElemBlocks ? b : kMaxElemBlocks);
}

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// The reduction of v over a block of kRowThreads threads, the same bits in every thread.
// scratch: kRowWarps values of shared memory, free again when this returns.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T* scratch, Op op) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = scratch[0];
  for (int i = 1; i < kRowWarps; ++i) total = op(total, scratch[i]);
  __syncthreads();  // everyone has read scratch before it is reused
  return total;
}

}  // namespace
}  // namespace ringtrain::cuda
