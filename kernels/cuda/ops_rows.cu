// Row-wise CUDA operations of kernels/cuda/ops_cuda.h: RMSNorm, RoPE, embedding, the
// cross-entropy reductions and backward, argmax. Same math as kernels/cpu/*.cpp, in fp32 with
// the CPU's double accumulators where it has them (RMSNorm statistics, sum of exponentials).
//
// Determinism: no float atomics anywhere. Row reductions use one block of kRowThreads threads
// per row: each thread accumulates a fixed strided subset of the row in ascending order, each
// warp combines by an xor butterfly, and every thread then adds the per-warp partials from
// shared memory in warp order, so the bits never depend on the thread schedule. The two
// scatter-adds (RMSNorm's dw, the embedding's dtable) give each output element to exactly one
// thread, which adds the rows / tokens in ascending order, as the CPU loop does.
#include <climits>
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {

constexpr int kRowThreads = 256;
constexpr int kRowWarps = kRowThreads / 32;
constexpr int kColThreads = 32;       // column kernels (dw, dtable): one thread per column
constexpr int kDwBatch = 8;           // rows per batch of loads in the dw kernel
constexpr int kDwChunkRows = 64;      // rows per partial sum of RMSNorm's dw (stage 1)
constexpr int kMaxEmbedSplits = 64;   // vocab ranges of the embedding backward (grid.y)
constexpr int kElemThreads = 256;
constexpr int64_t kMaxElemBlocks = 4096;
constexpr int kRopeMaxHalf = 256;     // head_dim <= 512

unsigned elem_blocks(int64_t n) {
  const int64_t b = (n + kElemThreads - 1) / kElemThreads;
  return static_cast<unsigned>(b < kMaxElemBlocks ? b : kMaxElemBlocks);
}

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// The reduction of v over the block, the same bits in every thread. scratch: kRowWarps values
// of shared memory, free again when this returns.
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

// (value, column) with the first column on ties; column INT_MAX: no column seen.
__device__ __forceinline__ void argmax_combine(float& v, int& j, float ov, int oj) {
  if (ov > v || (ov == v && oj < j)) {
    v = ov;
    j = oj;
  }
}

}  // namespace

// (Outside the anonymous namespace so the kernel keeps external linkage: the emulator names
// kernels in its fault reports through the dynamic symbol table.)
struct OpsRopeParams {
  int64_t pairs;  // tokens * half
  int heads, half, head_dim;
  const int32_t* positions;
  float attention_scaling;
  float inv_freq[kRopeMaxHalf];
};

// ---- RMSNorm ----

// static-check: ops_rmsnorm_fwd_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_rmsnorm_fwd_kernel(int dim, float eps, const float* x,
                                                                       const float* w, float* y, float* rstd) {
  RT_SHARED(double, red, [kRowWarps]);
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  double ss = 0.0;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) {
    const double v = xr[j];
    ss += v * v;
  }
  ss = block_reduce(ss, red, SumOp{});
  const float var = static_cast<float>(ss / static_cast<double>(dim));
  const float rs = 1.0f / sqrtf(var + eps);
  if (threadIdx.x == 0 && rstd != nullptr) rstd[r] = rs;
  float* yr = y + r * dim;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) yr[j] = w[j] * (xr[j] * rs);
}

// dx_j = r (w_j dy_j) - x_j r^3 / D * sum_k w_k dy_k x_k
// static-check: ops_rmsnorm_bwd_dx_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_rmsnorm_bwd_dx_kernel(int dim, const float* dy, const float* x,
                                                                          const float* w, const float* rstd,
                                                                          float* dx) {
  RT_SHARED(double, red, [kRowWarps]);
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  const float* dyr = dy + r * dim;
  const float rs = rstd[r];
  double dot = 0.0;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) dot += static_cast<double>(w[j]) * dyr[j] * xr[j];
  dot = block_reduce(dot, red, SumOp{});
  const double rsd = rs;
  const float c = static_cast<float>(dot * rsd * rsd * rsd / static_cast<double>(dim));
  float* dxr = dx + r * dim;
  for (int j = threadIdx.x; j < dim; j += kRowThreads) dxr[j] = rs * (w[j] * dyr[j]) - xr[j] * c;
}

// dw_j += sum over rows of dy_rj x_rj rstd_r, in two fixed-order stages so that the columns of
// a narrow model still fill the device: stage 1, thread (column j, chunk c) sums the rows of
// chunk c (kDwChunkRows rows, ascending) into work[c][j]; stage 2, one thread per column adds
// the chunks in ascending order to dw_j. The order depends on the shape only: bitwise the same
// on every run and schedule.
// static-check: ops_rmsnorm_bwd_dw_chunk_kernel smem=0
__global__ void __launch_bounds__(kColThreads) ops_rmsnorm_bwd_dw_chunk_kernel(int rows, int dim, const float* dy,
                                                                                const float* x, const float* rstd,
                                                                                float* work) {
  const int j = blockIdx.x * kColThreads + threadIdx.x;
  if (j >= dim) return;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * kDwChunkRows;
  const int64_t end = begin + kDwChunkRows < rows ? begin + kDwChunkRows : rows;
  float acc = 0.0f;
  // kDwBatch rows' terms loaded together (independent loads in flight), added in row order.
  int64_t r = begin;
  for (; r + kDwBatch <= end; r += kDwBatch) {
    float term[kDwBatch];
    for (int k = 0; k < kDwBatch; ++k) term[k] = dy[(r + k) * dim + j] * (x[(r + k) * dim + j] * rstd[r + k]);
    for (int k = 0; k < kDwBatch; ++k) acc += term[k];
  }
  for (; r < end; ++r) acc += dy[r * dim + j] * (x[r * dim + j] * rstd[r]);
  work[static_cast<int64_t>(blockIdx.y) * dim + j] = acc;
}

// static-check: ops_rmsnorm_bwd_dw_sum_kernel smem=0
__global__ void __launch_bounds__(kColThreads) ops_rmsnorm_bwd_dw_sum_kernel(int chunks, int dim, const float* work,
                                                                              float* dw) {
  const int j = blockIdx.x * kColThreads + threadIdx.x;
  if (j >= dim) return;
  float acc = dw[j];
  for (int c = 0; c < chunks; ++c) acc += work[static_cast<int64_t>(c) * dim + j];
  dw[j] = acc;
}

int64_t rmsnorm_backward_work_elems(int rows, int dim) {
  return static_cast<int64_t>((rows + kDwChunkRows - 1) / kDwChunkRows) * dim;
}

gpu::Status rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd,
                            gpu::Stream stream) {
  RT_CHECK(a.rows >= 0 && a.dim >= 0, "cuda::rmsnorm_forward: bad shape ", a.rows, " x ", a.dim);
  if (a.rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_rmsnorm_fwd_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0, stream, a.dim, a.eps, x,
                     w, y, rstd);
}

gpu::Status rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                             const float* rstd, float* dx, float* dw, float* work, gpu::Stream stream) {
  RT_CHECK(a.rows >= 0 && a.dim >= 0, "cuda::rmsnorm_backward: bad shape ", a.rows, " x ", a.dim);
  if (a.rows == 0 || a.dim == 0) return gpu::Status::kSuccess;
  if (dx != nullptr) {
    const gpu::Status s = gpu::launch(ops_rmsnorm_bwd_dx_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0,
                                      stream, a.dim, dy, x, w, rstd, dx);
    if (s != gpu::Status::kSuccess) return s;
  }
  if (dw == nullptr) return gpu::Status::kSuccess;
  RT_CHECK(work != nullptr, "cuda::rmsnorm_backward: dw needs a work buffer of rmsnorm_backward_work_elems floats");
  const int chunks = (a.rows + kDwChunkRows - 1) / kDwChunkRows;
  const unsigned col_blocks = static_cast<unsigned>((a.dim + kColThreads - 1) / kColThreads);
  RT_CHECK(chunks <= 65535, "cuda::rmsnorm_backward: ", a.rows, " rows exceed ", 65535 * kDwChunkRows);
  const gpu::Status s = gpu::launch(ops_rmsnorm_bwd_dw_chunk_kernel, dim3(col_blocks, static_cast<unsigned>(chunks)),
                                    kColThreads, 0, stream, a.rows, a.dim, dy, x, rstd, work);
  if (s != gpu::Status::kSuccess) return s;
  return gpu::launch(ops_rmsnorm_bwd_dw_sum_kernel, col_blocks, kColThreads, 0, stream, chunks, a.dim,
                     static_cast<const float*>(work), dw);
}

// ---- RoPE ----

// One thread per (token, frequency): the angle pos * inv_freq[i] (inv_freq and the yarn
// attention scaling from the host's rope_frequencies, the CPU's, so the fp32 angle has the same
// bits), cos and sin in
// fp32 (the accurate sincosf; its large-argument reduction is the 32-byte stack frame ptxas
// reports, not a spill), then the pair (i, i + half) of every head of the token.
// static-check: ops_rope_kernel smem=0
template <bool kInverse>
__global__ void __launch_bounds__(kElemThreads) ops_rope_kernel(OpsRopeParams p, float* x) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.pairs; idx += stride) {
    const int64_t t = idx / p.half;
    const int i = static_cast<int>(idx - t * p.half);
    const float ang = static_cast<float>(p.positions[t]) * p.inv_freq[i];
    float sn, cs;
    sincosf(ang, &sn, &cs);  // one argument reduction for both
    cs *= p.attention_scaling;
    sn *= p.attention_scaling;
    float* v = x + t * p.heads * static_cast<int64_t>(p.head_dim) + i;
    for (int hh = 0; hh < p.heads; ++hh, v += p.head_dim) {
      const float x1 = v[0], x2 = v[p.half];
      if (kInverse) {
        v[0] = x1 * cs + x2 * sn;
        v[p.half] = x2 * cs - x1 * sn;
      } else {
        v[0] = x1 * cs + (-x2) * sn;
        v[p.half] = x2 * cs + x1 * sn;
      }
    }
  }
}

namespace {
template <bool kInverse>
gpu::Status rope_apply(const RopeArgs& a, float* x, gpu::Stream stream) {
  RT_CHECK(a.head_dim % 2 == 0 && a.head_dim >= 0, "cuda::rope: head_dim must be even, got ", a.head_dim);
  RT_CHECK(a.head_dim / 2 <= kRopeMaxHalf, "cuda::rope: head_dim ", a.head_dim, " above ", 2 * kRopeMaxHalf);
  RT_CHECK(a.tokens >= 0 && a.heads >= 0, "cuda::rope: bad shape ", a.tokens, " x ", a.heads);
  RT_CHECK(a.positions != nullptr || a.tokens == 0, "cuda::rope: positions are required");
  OpsRopeParams p{};
  p.half = a.head_dim / 2;
  p.heads = a.heads;
  p.head_dim = a.head_dim;
  p.pairs = static_cast<int64_t>(a.tokens) * p.half;
  p.positions = a.positions;
  if (p.pairs == 0 || a.heads == 0) return gpu::Status::kSuccess;
  const RopeFrequencies fr = rope_frequencies(a.head_dim, a.theta, a.scaling);
  for (int i = 0; i < p.half; ++i) p.inv_freq[i] = fr.inv_freq[static_cast<size_t>(i)];
  p.attention_scaling = fr.attention_scaling;
  return gpu::launch(ops_rope_kernel<kInverse>, elem_blocks(p.pairs), kElemThreads, 0, stream, p, x);
}
}  // namespace

gpu::Status rope_forward(const RopeArgs& a, float* x, gpu::Stream stream) { return rope_apply<false>(a, x, stream); }
gpu::Status rope_backward(const RopeArgs& a, float* dx, gpu::Stream stream) { return rope_apply<true>(a, dx, stream); }

// ---- embedding ----

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

// ---- cross-entropy ----

// static-check: ops_ce_max_kernel smem=32
__global__ void __launch_bounds__(kRowThreads) ops_ce_max_kernel(int v, const float* logits, float* row_max) {
  RT_SHARED(float, red, [kRowWarps]);
  const float* z = logits + static_cast<int64_t>(blockIdx.x) * v;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < v; j += kRowThreads) m = z[j] > m ? z[j] : m;
  m = block_reduce(m, red, MaxOp{});
  if (threadIdx.x == 0) row_max[blockIdx.x] = m;
}

// static-check: ops_ce_sumexp_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_ce_sumexp_kernel(int v, const float* logits,
                                                                     const float* row_max, float* row_sumexp) {
  RT_SHARED(double, red, [kRowWarps]);
  const float* z = logits + static_cast<int64_t>(blockIdx.x) * v;
  const float m = row_max[blockIdx.x];
  double s = 0.0;
  for (int j = threadIdx.x; j < v; j += kRowThreads) s += static_cast<double>(expf(z[j] - m));
  s = block_reduce(s, red, SumOp{});
  if (threadIdx.x == 0) row_sumexp[blockIdx.x] = static_cast<float>(s);
}

// One thread per row: the target's logit when this shard owns it, else 0.
// static-check: ops_ce_target_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_ce_target_kernel(CrossEntropyArgs a, const float* logits,
                                                                      const int32_t* targets, float* target_logit) {
  const int r = blockIdx.x * kElemThreads + threadIdx.x;
  if (r >= a.rows) return;
  const int64_t col = static_cast<int64_t>(targets[r]) - a.vocab_start;
  target_logit[r] = (targets[r] >= 0 && col >= 0 && col < a.vocab_local)
                        ? logits[static_cast<int64_t>(r) * a.vocab_local + col]
                        : 0.0f;
}

// static-check: ops_ce_finish_kernel smem=0
__global__ void __launch_bounds__(kElemThreads) ops_ce_finish_kernel(int rows, const float* row_max,
                                                                      const float* row_sumexp,
                                                                      const float* target_logit,
                                                                      const int32_t* targets, float* row_loss,
                                                                      float* row_lse) {
  const int r = blockIdx.x * kElemThreads + threadIdx.x;
  if (r >= rows) return;
  // log in double, rounded once, as the CPU's cross_entropy_forward
  const float lse = row_max[r] + static_cast<float>(log(static_cast<double>(row_sumexp[r])));
  if (row_lse != nullptr) row_lse[r] = lse;
  if (row_loss != nullptr) row_loss[r] = targets[r] < 0 ? 0.0f : lse - target_logit[r];
}

// logits <- (softmax - onehot(target)) * scale; rows with target < 0 become 0.
// static-check: ops_ce_backward_kernel smem=0
__global__ void __launch_bounds__(kRowThreads) ops_ce_backward_kernel(CrossEntropyArgs a, float* logits,
                                                                       const float* row_lse, const int32_t* targets,
                                                                       float scale) {
  const int64_t r = blockIdx.x;
  float* z = logits + r * a.vocab_local;
  const int32_t target = targets[r];
  if (target < 0) {
    for (int j = threadIdx.x; j < a.vocab_local; j += kRowThreads) z[j] = 0.0f;
    return;
  }
  const float lse = row_lse[r];
  const int64_t col = static_cast<int64_t>(target) - a.vocab_start;
  for (int j = threadIdx.x; j < a.vocab_local; j += kRowThreads) {
    // products rounded on their own (no contraction), as the CPU's two statements
    const float p = __fmul_rn(expf(z[j] - lse), scale);
    z[j] = j == col ? p - scale : p;
  }
}

// static-check: ops_argmax_kernel smem=64
__global__ void __launch_bounds__(kRowThreads) ops_argmax_kernel(CrossEntropyArgs a, const float* logits,
                                                                  float* pairs) {
  RT_SHARED(float, vals, [kRowWarps]);
  RT_SHARED(int, cols, [kRowWarps]);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* z = logits + static_cast<int64_t>(blockIdx.x) * a.vocab_local;
  float bv = -INFINITY;
  int bj = INT_MAX;
  if (static_cast<int>(threadIdx.x) < a.vocab_local) {
    bv = z[threadIdx.x];
    bj = threadIdx.x;
  }
  for (int j = threadIdx.x + kRowThreads; j < a.vocab_local; j += kRowThreads)
    if (z[j] > bv) {  // strictly: this thread's columns ascend, the first one stays
      bv = z[j];
      bj = j;
    }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
    argmax_combine(bv, bj, ov, oj);
  }
  if (lane == 0) {
    vals[warp] = bv;
    cols[warp] = bj;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float v = vals[0];
    int j = cols[0];
    for (int w = 1; w < kRowWarps; ++w) argmax_combine(v, j, vals[w], cols[w]);
    if (j == INT_MAX) j = 0;  // an empty shard
    pairs[2 * static_cast<int64_t>(blockIdx.x)] = v;
    pairs[2 * static_cast<int64_t>(blockIdx.x) + 1] = static_cast<float>(a.vocab_start + j);
  }
}

namespace {
void check_ce(const CrossEntropyArgs& a, const char* what) {
  RT_CHECK(a.rows >= 0 && a.vocab_local >= 0, "cuda::", what, ": bad shape ", a.rows, " x ", a.vocab_local);
}
}  // namespace

gpu::Status cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max, gpu::Stream stream) {
  check_ce(a, "cross_entropy_max");
  if (a.rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_ce_max_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0, stream, a.vocab_local, logits,
                     row_max);
}

gpu::Status cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                                 float* row_sumexp, gpu::Stream stream) {
  check_ce(a, "cross_entropy_sumexp");
  if (a.rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_ce_sumexp_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0, stream, a.vocab_local,
                     logits, row_max, row_sumexp);
}

gpu::Status cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                                 float* target_logit, gpu::Stream stream) {
  check_ce(a, "cross_entropy_target");
  if (a.rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_ce_target_kernel, static_cast<unsigned>((a.rows + kElemThreads - 1) / kElemThreads),
                     kElemThreads, 0, stream, a, logits, targets, target_logit);
}

gpu::Status cross_entropy_finish(int rows, const float* row_max, const float* row_sumexp, const float* target_logit,
                                 const int32_t* targets, float* row_loss, float* row_lse, gpu::Stream stream) {
  RT_CHECK(rows >= 0, "cuda::cross_entropy_finish: negative rows ", rows);
  if (rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_ce_finish_kernel, static_cast<unsigned>((rows + kElemThreads - 1) / kElemThreads),
                     kElemThreads, 0, stream, rows, row_max, row_sumexp, target_logit, targets, row_loss, row_lse);
}

gpu::Status cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                                   const int32_t* targets, float row_scale, gpu::Stream stream) {
  check_ce(a, "cross_entropy_backward");
  if (a.rows == 0 || a.vocab_local == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_ce_backward_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0, stream, a, logits,
                     row_lse, targets, row_scale);
}

gpu::Status argmax_pairs(const CrossEntropyArgs& a, const float* logits, float* pairs, gpu::Stream stream) {
  check_ce(a, "argmax_pairs");
  RT_CHECK(static_cast<int64_t>(a.vocab_start) + a.vocab_local <= (int64_t{1} << 24),
           "cuda::argmax_pairs: ids beyond fp32's exact range");
  if (a.rows == 0) return gpu::Status::kSuccess;
  return gpu::launch(ops_argmax_kernel, static_cast<unsigned>(a.rows), kRowThreads, 0, stream, a, logits, pairs);
}

}  // namespace ringtrain::cuda
