// Sample kernels written against the GPU layer, as the real kernels are: a warp-shuffle row
// reduction (RMSNorm, one warp per row), a block-wide softmax (shuffles + shared memory +
// barriers), and a tiled bf16 GEMM on ldmatrix + mma.sync + cp.async double buffering.
#pragma once

#include <cuda_bf16.h>

#include "src/device/gpu.h"

namespace ringtrain::test {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, x/y [rows, cols] fp32.
gpu::Status sample_rmsnorm(const float* x, const float* w, float* y, int rows, int cols, float eps, gpu::Stream s);
// y[r, :] = softmax(x[r, :]), one block of 256 threads per row. skip_barrier removes the
// __syncthreads between writing and reading the per-warp maxima (the negative test).
gpu::Status sample_softmax(const float* x, float* y, int rows, int cols, bool skip_barrier, gpu::Stream s);
// c[m, n] = a[m, k] b[k, n] (row-major, bf16 in, fp32 out), any m, n, k >= 1; the cp.async path
// needs k and n multiples of 8 (16-byte rows), else tiles are loaded with plain loads.
// skip_stage_barrier removes the __syncthreads between the last read of a shared-memory stage
// and the next cp.async prefetch into it (the negative test; the flash kernels have the same
// barrier).
gpu::Status sample_gemm_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c, int m, int n, int k, gpu::Stream s,
                             bool skip_stage_barrier = false);
// Dynamic shared memory the GEMM requests (the static check compares ptxas's report with it).
constexpr int kSampleGemmSmemBytes = 2 * (64 * 40 + 32 * 72) * 2;

// out[i] = in[i + 1] for i < n: reads one element past `in` (the out-of-bounds negative test).
gpu::Status sample_read_past_end(const float* in, float* out, int n, gpu::Stream s);
// Writes out[n] (one past its end).
gpu::Status sample_write_past_end(float* out, int n, gpu::Stream s);
// Reads dynamic shared memory one element past what the launch requested (n floats).
gpu::Status sample_smem_read_past_end(float* out, int n, gpu::Stream s);

}  // namespace ringtrain::test
