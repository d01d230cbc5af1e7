// Embedding lookup and its gradient on a CUDA device (kernels/embedding.h). The gradient's
// scatter-add gives each table element to exactly one thread, which adds the tokens in
// ascending order, as the CPU loop (kernels/cpu/embedding.cpp) does.
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {
constexpr int kColThreads = 32;      // backward: one thread per column
constexpr int kMaxEmbedSplits = 64;  // vocab ranges of the backward (grid.y)
}  // namespace

// static-check: ops_embedding_fwd_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_embedding_fwd_kernel(EmbeddingArgs a, const int32_t* ids,
                                                                          const float* table, float* out) {
  const int64_t n = static_cast<int64_t>(a.tokens) * a.dim;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t t = idx / a.dim, j = idx - t * a.dim;
    const int64_t row = static_cast<int64_t>(ids[t]) - a.vocab_start;
    out[idx] = (row >= 0 && row < a.vocab_local) ? table[row * a.dim + j] : 0.0f;
  }
}

// dtable[row][j] += dout[t][j] for the tokens t (ascending) whose id is row + vocab_start.
// Thread = column j; block row y owns the table rows [y * rows_per_split, (y + 1) *
// rows_per_split), so every element has exactly one writer and sees the tokens in order.
// static-check: ops_embedding_bwd_kernel smem=0
__global__ void __launch_bounds__(kColThreads) ops_embedding_bwd_kernel(EmbeddingArgs a, int rows_per_split,
                                                                         const int32_t* ids, const float* dout,
                                                                         float* dtable) {
  const int j = blockIdx.x * kColThreads + threadIdx.x;
  if (j >= a.dim) return;
  const int64_t lo = static_cast<int64_t>(blockIdx.y) * rows_per_split;
  const int64_t hi = lo + rows_per_split < a.vocab_local ? lo + rows_per_split : a.vocab_local;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int64_t row = static_cast<int64_t>(ids[t]) - a.vocab_start;
    if (row >= lo && row < hi) dtable[row * a.dim + j] += dout[t * a.dim + j];
  }
}

gpu::Status embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out,
                              gpu::Stream stream) {
  RT_CHECK(a.tokens >= 0 && a.dim >= 0 && a.vocab_local >= 0, "cuda::embedding_forward: bad shape");
  const int64_t n = static_cast<int64_t>(a.tokens) * a.dim;
  if (n == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_embedding_fwd_kernel, elem_blocks(n), kElemThreads, 0, stream, a, ids, table, out);
}

gpu::Status embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout, float* dtable,
                               gpu::Stream stream) {
  RT_CHECK(a.tokens >= 0 && a.dim >= 0 && a.vocab_local >= 0, "cuda::embedding_backward: bad shape");
  if (a.tokens == 0 || a.dim == 0 || a.vocab_local == 0) return gpu::Status::kSuccess;
  const int splits = a.vocab_local < kMaxEmbedSplits ? a.vocab_local : kMaxEmbedSplits;
  const int rows_per_split = (a.vocab_local + splits - 1) / splits;
  const dim3 grid(static_cast<unsigned>((a.dim + kColThreads - 1) / kColThreads),
                  static_cast<unsigned>((a.vocab_local + rows_per_split - 1) / rows_per_split));
  return gpu::launch(ops_embedding_bwd_kernel, grid, kColThreads, 0, stream, a, rows_per_split, ids, dout, dtable);
}
}  // namespace ringtrain::cuda
