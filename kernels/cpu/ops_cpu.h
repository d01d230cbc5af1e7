// The CPU versions of the operations in kernels/ (host pointers), one implementation file each
// under kernels/cpu. kernels/<op>.h holds each op's arguments and contract; the CUDA versions
// of the same ops are in kernels/cuda/ops_cuda.h. Layers above the kernels reach them through
// the Backend (kernels/backend.h); tests and benchmarks call them directly.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/attention_probs.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace ringtrain {

// ---- attention (kernels/cpu/attention.cpp, kernels/attention.h) ----
void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                       float* out, float* lse);

// delta[b, h, s_q] = rowsum(dout * out): the softmax-backward term, computed once from the
// final (merged) output even when the keys arrive in several blocks.
void attention_backward_delta(const AttentionArgs& a, const float* out, const float* dout,
                              float* delta);

// Accumulates (+=) into dq, dk, dv the gradients through this block of keys, given the
// FINAL row lse and delta of the whole attention (so a ring step's block contributes exactly
// its share).
void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                        const float* dout, const float* lse, const float* delta, float* dq,
                        float* dk, float* dv);

// Merges a block's partial result (out_b, lse_b) into the running (out, lse), both normalized:
//   lse' = log(exp(lse) + exp(lse_b)) = max + log1p(exp(min - max))
//   out' = out * exp(lse - lse') + out_b * exp(lse_b - lse')
// in that max-shifted form, so no exp overflows and -inf (no keys yet) merges cleanly.
void attention_merge(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                     const float* lse_b);

// CPU backend: the threads the attention kernels split their (batch x head x tile) work over,
// and the large GEMMs their rows (kernels/cpu/thread_pool.h; BLAS runs single-threaded inside
// them). Default 1; the trainer sets it from run.threads. Process-wide.
void attention_set_cpu_threads(int threads);
int attention_cpu_threads();

// One line for the run log and the benchmarks: the CPU kernels' ISA path (kernels/cpu/cpu_isa.h),
// the attention tiles at `head_dim` and the cache sizes they came from, the GEMM library. Input error for a bad
// RINGTRAIN_CPU_ISA.
std::string cpu_kernels_summary(int head_dim);

// The library gemm() calls (kernels/cpu/gemm.cpp): "onednn" or "openblas".
const char* cpu_gemm_library();

// ---- attention probabilities (kernels/cpu/attention_probs.cpp, kernels/attention_probs.h) ----
// CPU implementation (host pointers); the backends' attention_probs (kernels/backend.h).
void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                     const float* lse, float* rows, float* pooled, float* stats);

// ---- cross-entropy (kernels/cpu/cross_entropy.cpp, kernels/cross_entropy.h) ----
void cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max);
void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                          float* row_sumexp);
void cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                          float* target_logit);
// In place: logits <- dL/dlogits = (softmax - onehot(target)) * row_scale[row], where
// lse = m + log(s) is the global row log-sum-exp; rows with target < 0 get zero gradient.
void cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                            const int32_t* targets, const float* row_scale);

// Single-shard convenience: per-row losses (0 for ignored rows) and row_lse.
void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                           float* row_loss, float* row_lse);

// ---- embedding (kernels/cpu/embedding.cpp, kernels/embedding.h) ----
// out[tokens, dim]
void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out);
// dtable[vocab_local, dim] += scatter of dout
void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout,
                        float* dtable);

// ---- RMSNorm (kernels/cpu/rmsnorm.cpp, kernels/rmsnorm.h) ----
// x[rows, dim], w[dim] -> y[rows, dim], rstd[rows] (saved for backward)
void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd);
// dx[rows, dim] = ..., dw[dim] += ...
void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                      const float* rstd, float* dx, float* dw);

// ---- RoPE (kernels/cpu/rope.cpp, kernels/rope.h) ----
// In place on x[tokens, heads, head_dim].
void rope_forward(const RopeArgs& a, float* x);
// The inverse rotation, in place on the gradient.
void rope_backward(const RopeArgs& a, float* dx);

// ---- AdamW (kernels/cpu/adamw.cpp, kernels/adamw.h) ----
void adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v,
                int64_t n);

// sum of squares in double (for the global gradient norm)
double sum_squares(const float* x, int64_t n);
void scale_inplace(float* x, int64_t n, float s);

// ---- GEMM (kernels/cpu/gemm.cpp) ----
// GEMM, row-major: C[m,n] = alpha * op(A) op(B) + beta * C, op = transpose when asked.
// CPU: OpenBLAS sgemm (transposes are free there). Linear layers use the Hugging Face weight
// layout W[out, in], so y = x W^T and the backward products are plain GEMMs with transposes.
// y[n, out] = x[n, in] W[out, in]^T
// dx[n, in] (= or += when accumulate_dx) dy W;  dw[out, in] += dy^T x.  dx may be null.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);

// y[n, out] = x[n, in] W[out, in]^T
void linear_forward(const float* x, const float* w, float* y, int n, int in, int out);
// dx[n, in] (= or += when accumulate_dx) dy W;  dw[out, in] += dy^T x.  dx may be null.
void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n,
                     int in, int out, bool accumulate_dx = false);

// ---- SwiGLU (kernels/cpu/swiglu.cpp) ----
// SwiGLU: h = silu(gate) * up, silu(g) = g * sigmoid(g).
// dgate, dup from dh (all [n]).
void swiglu_forward(const float* gate, const float* up, float* h, int64_t n);
// dgate, dup from dh (all [n]).
void swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                     int64_t n);

}  // namespace ringtrain
