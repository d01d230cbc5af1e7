// CUDA flash attention (kernels/cuda/attention_fwd.cu) through the GPU layer: runs on a real
// device (RINGTRAIN_GPU=cuda) and on the emulated one (RINGTRAIN_GPU=emulate).
//
// Same contract as kernels/attention.h (layouts [b, s, h, d], explicit global positions, the
// causal, document and window mask, GQA with kv head = h / (h / h_kv), lse [b, h, s_q] fp32, a
// row that sees no key gets out = 0 and lse = -inf), except that every pointer is device memory:
// AttentionArgs::q_pos / k_pos point to int32 device arrays (null: 0..s-1), q_doc / k_doc to
// int32 device arrays [b, s_q] / [b, s_k] (null: one document).
// Head dims 64 and 128; q/k/v/out 16-byte aligned. Anything else fails with ringtrain::Error
// naming the problem.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/attention.h"
#include "src/device/gpu.h"

namespace ringtrain::cuda {

// Tile shape of the forward kernel, per CTA: kAttnFwdRows query rows (4 warps x 16 rows) against
// key tiles of kAttnFwdKeys keys. Dynamic shared memory: Q [64][d+8] + K, V [2][64][d+8] (16-bit
// elements, rows padded by 16 bytes): 46,080 bytes at d = 64, 87,040 bytes at d = 128.
constexpr int kAttnFwdRows = 64;
constexpr int kAttnFwdKeys = 64;
constexpr int kAttnFwdThreads = 128;
constexpr int attention_fwd_smem_bytes(int d) { return (kAttnFwdRows + 4 * kAttnFwdKeys) * (d + 8) * 2; }

// out [b, s_q, h, d] (input type) and lse [b, h, s_q] (fp32; may be null) for one block of keys.
template <typename T>
gpu::Status attention_forward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, T* out, float* lse,
                                   gpu::Stream stream);

extern template gpu::Status attention_forward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*,
                                                                  const __nv_bfloat16*, const __nv_bfloat16*,
                                                                  __nv_bfloat16*, float*, gpu::Stream);
extern template gpu::Status attention_forward_cuda<__half>(const AttentionArgs&, const __half*, const __half*,
                                                           const __half*, __half*, float*, gpu::Stream);

// Backward (kernels/cuda/attention_bwd.cu), deterministic (bitwise the same on every run):
//   delta[b, h, s_q] = rowsum(dout * out) (fp32), computed first when `out` is non-null; with
//   out == null, `delta` must already hold it (a ring step: delta of the final merged output);
//   dq [b, s_q, h, d], dk and dv [b, s_k, h_kv, d]: fp32, OVERWRITTEN with this block of keys'
//   gradients (the CPU op accumulates; a ring step adds them to its running sums itself).
//   lse is the final row log-sum-exp [b, h, s_q] from the forward.
template <typename T>
gpu::Status attention_backward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* out,
                                    const T* dout, const float* lse, float* delta, float* dq, float* dk, float* dv,
                                    gpu::Stream stream);

extern template gpu::Status attention_backward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*,
                                                                   const __nv_bfloat16*, const __nv_bfloat16*,
                                                                   const __nv_bfloat16*, const __nv_bfloat16*,
                                                                   const float*, float*, float*, float*, float*,
                                                                   gpu::Stream);
extern template gpu::Status attention_backward_cuda<__half>(const AttentionArgs&, const __half*, const __half*,
                                                            const __half*, const __half*, const __half*, const float*,
                                                            float*, float*, float*, float*, gpu::Stream);

}  // namespace ringtrain::cuda
