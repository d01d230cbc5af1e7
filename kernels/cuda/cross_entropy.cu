// Cross-entropy over a vocabulary shard on a CUDA device (kernels/cross_entropy.h): the three
// row reductions, the finish and the backward, plus the argmax the evaluation uses. Same math
// as kernels/cpu/cross_entropy.cpp, the sum of exponentials in double as there.
#include <climits>
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {
// (value, column) with the first column on ties; column INT_MAX: no column seen.
__device__ __forceinline__ void argmax_combine(float& v, int& j, float ov, int oj) {
  if (ov > v || (ov == v && oj < j)) {
    v = ov;
    j = oj;
  }
}
}  // namespace

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
