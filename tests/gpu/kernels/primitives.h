// Launchers of the primitive test kernels (tests/gpu/kernels/primitives.cu).
#pragma once

#include <cstdint>

#include "src/device/gpu.h"

namespace ringtrain::test {

// One warp: `count` (1, 2, 4) 8x8 b16 matrices (row-major, 64 elements each) -> ldmatrix
// (.trans when trans) -> out[lane * count + reg].
gpu::Status launch_ldmatrix_dump(int count, bool trans, const uint16_t* mats, uint32_t* out);
// One warp, one mma.m16n8k16: D = A B + C with A [16][16] and B [16][8] row-major (bit patterns
// of bf16 or f16), C and D [16][8] fp32. b_mode: 0 fragments built from the ISA formulas,
// 1 B through ldmatrix.x2.trans from [k][n], 2 B through ldmatrix.x2 from [n][k]; A comes
// through ldmatrix.x4 in modes 1 and 2 and from the formulas in mode 0.
gpu::Status launch_mma(bool bf16, int b_mode, const uint16_t* a, const uint16_t* b, const float* c, float* d);
// Two warps (64 threads): kWarpOps results per thread of shuffles, votes (see the .cu).
constexpr int kWarpOps = 17;
gpu::Status launch_warp_ops(const int* in, int* out);
// 8 blocks x 128 threads of atomics on counters[8] (ints) and fsum[1].
gpu::Status launch_atomics(int* counters, float* fsum);
// One warp of cp.async: see the .cu for the layout of out (32 x kCpOut floats).
constexpr int kCpOut = 32;
gpu::Status launch_cp_async(const float* src, float* out);

}  // namespace ringtrain::test
