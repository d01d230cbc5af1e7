// The CUDA versions of the operations in kernels/ (everything but GEMM, which is the GPU
// layer's cuBLASLt call, and the bf16 flash attention of attention_cuda.h), launched through
// the GPU layer on a stream. Same contracts as the CPU headers named on each group, except
// that every pointer is device memory (positions and ids included). They run on a real device
// (RINGTRAIN_GPU=cuda) and on the emulated one (RINGTRAIN_GPU=emulate); every reduction has a
// fixed order, so results are bitwise the same on every run and under every emulator schedule.
// Each returns the launch's status (wrap in CUDA_CHECK).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/attention_probs.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "src/device/gpu.h"

namespace ringtrain::cuda {

// ---- backend elementwise ops (kernels/cuda/elementwise.cu) ----
gpu::Status fill(float* x, float value, int64_t n, gpu::Stream stream);
gpu::Status add_inplace(float* dst, const float* src, int64_t n, gpu::Stream stream);  // dst += src
gpu::Status scale_inplace(float* x, float s, int64_t n, gpu::Stream stream);
// Round to nearest even, as __float2bfloat16_rn.
gpu::Status cast_to_bf16(const float* x, __nv_bfloat16* y, int64_t n, gpu::Stream stream);
gpu::Status cast_from_bf16(const __nv_bfloat16* x, float* y, int64_t n, gpu::Stream stream);
// ---- SwiGLU (kernels/cuda/swiglu.cu; the contract of kernels/cpu/ops_cpu.h) ----
gpu::Status swiglu_forward(const float* gate, const float* up, float* h, int64_t n, gpu::Stream stream);
gpu::Status swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                            int64_t n, gpu::Stream stream);
// src[A][B][C] -> dst[B][A][C] (C contiguous elements): the Ulysses all-to-all packing.
gpu::Status swap01(const float* src, float* dst, int64_t A, int64_t B, int64_t C, gpu::Stream stream);
// kernels/backend.h gather_heads / sum_heads (map in device memory).
gpu::Status gather_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                         const int32_t* map, gpu::Stream stream);
gpu::Status sum_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                      const int32_t* map, gpu::Stream stream);

// ---- RMSNorm (kernels/cuda/rmsnorm.cu, kernels/rmsnorm.h) ----
// dw ACCUMULATES (+=): partial sums over chunks of 64 rows (ascending),
// then the chunks in ascending order, into `work` (rmsnorm_backward_work_elems floats; only
// needed with dw).
gpu::Status rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd,
                            gpu::Stream stream);
gpu::Status rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                             const float* rstd, float* dx, float* dw, float* work, gpu::Stream stream);
int64_t rmsnorm_backward_work_elems(int rows, int dim);
// ---- RoPE (kernels/cuda/rope.cu, kernels/rope.h); a.positions: device int32[tokens] ----
gpu::Status rope_forward(const RopeArgs& a, float* x, gpu::Stream stream);
gpu::Status rope_backward(const RopeArgs& a, float* dx, gpu::Stream stream);
// ---- embedding (kernels/cuda/embedding.cu, kernels/embedding.h) ----
// dtable ACCUMULATES, tokens in ascending order.
gpu::Status embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out,
                              gpu::Stream stream);
gpu::Status embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout, float* dtable,
                               gpu::Stream stream);
// ---- cross-entropy (kernels/cuda/cross_entropy.cu, kernels/cross_entropy.h) ----
// The three reductions and the backward.
gpu::Status cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max, gpu::Stream stream);
gpu::Status cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                                 float* row_sumexp, gpu::Stream stream);
gpu::Status cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                                 float* target_logit, gpu::Stream stream);
// row_lse = m + log(s); row_loss = target < 0 ? 0 : row_lse - t.
gpu::Status cross_entropy_finish(int rows, const float* row_max, const float* row_sumexp,
                                 const float* target_logit, const int32_t* targets, float* row_loss,
                                 float* row_lse, gpu::Stream stream);
// row_scale: one float for every row (the loss scale), not an array.
gpu::Status cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                                   const int32_t* targets, float row_scale, gpu::Stream stream);
// Per row of this shard: pairs[2r] = the largest logit, pairs[2r+1] = vocab_start + its column
// (the first one on ties), as float.
gpu::Status argmax_pairs(const CrossEntropyArgs& a, const float* logits, float* pairs, gpu::Stream stream);

// ---- AdamW (kernels/cuda/adamw.cu, kernels/adamw.h) ----
gpu::Status adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v, int64_t n,
                       gpu::Stream stream);
// *out = sum of x[i]^2 in double, in a fixed order (fixed by n); work: kSumSquaresBlocks doubles.
constexpr int kSumSquaresBlocks = 256;
gpu::Status sum_squares(const float* x, int64_t n, double* out, double* work, gpu::Stream stream);

// ---- fp32 attention (kernels/cuda/attention_f32.cu) ----
// kernels/attention.h's contract in fp32, any head dim (<= 256), GQA, explicit device
// positions and document ids, sliding window, masked rows lse = -inf and out = 0. A simple kernel (a thread per query row for
// the forward and dQ, a thread per key row for dK/dV), the reference the bf16 flash kernels
// and the CPU path are compared with; backward ACCUMULATES into dq, dk, dv.
gpu::Status attention_forward_f32(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                  float* out, float* lse, gpu::Stream stream);
gpu::Status attention_backward_delta_f32(const AttentionArgs& a, const float* out, const float* dout,
                                         float* delta, gpu::Stream stream);
gpu::Status attention_backward_f32(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                   const float* dout, const float* lse, const float* delta, float* dq,
                                   float* dk, float* dv, gpu::Stream stream);
gpu::Status attention_merge_f32(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                                const float* lse_b, gpu::Stream stream);

// ---- attention probabilities (kernels/cuda/attention_probs.cu) ----
// kernels/attention_probs.h's contract in fp32, every pointer (row_slot and spans included) in
// device memory; outputs accumulate.
gpu::Status attention_probs_f32(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                                const float* lse, float* rows, float* pooled, float* stats, gpu::Stream stream);

}  // namespace ringtrain::cuda
