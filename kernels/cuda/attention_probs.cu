// Attention probabilities on a CUDA device (kernels/attention_probs.h, ops_cuda.h): one thread
// per (sample, head, group of query positions), a group being one pooled row of `pool`
// positions (one position without a pooled map). The thread finds its queries in the block,
// recomputes p = exp(scale q.k - lse) for each visible key in ascending key order and adds it
// to the rows, the pooled row and the statistics it alone owns: no atomics, the same bits on
// every run, as the other fp32 kernels (attention_f32.cu).
#include <cmath>
#include <cstdint>

#include "kernels/attention_probs.h"
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/ops_cuda.h"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

struct ProbsParams : AttnParams {
  int seq_len, n_rows, pool, n_pool, n_spans, width;
  const int32_t* row_slot;
  const int32_t* spans;
};

namespace {

constexpr int kThreads = 128;

}  // namespace

// Grid (groups / 128, h, b); thread = the query positions [g * span, (g + 1) * span).
// static-check: attention_probs_kernel smem=0
__global__ void __launch_bounds__(kThreads) attention_probs_kernel(ProbsParams p, const float* Q, const float* K,
                                                                   const float* L, float* rows, float* pooled,
                                                                   float* stats) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x, hh = blockIdx.y, bi = blockIdx.z;
  const int span = p.pool > 0 ? p.pool : 1;
  if (g >= p.seq_len / span) return;
  const int d = p.d, kvh = hh / p.group;
  const int64_t q_stride = static_cast<int64_t>(p.h) * d, kv_stride = static_cast<int64_t>(p.h_kv) * d;
  const int64_t item = static_cast<int64_t>(bi) * p.h + hh;
  const float* Kb = K + static_cast<int64_t>(bi) * p.s_k * kv_stride + static_cast<int64_t>(kvh) * d;
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);
  for (int i = 0; i < p.s_q; ++i) {
    const int qp = mk.qpos(i);
    if (qp / span != g || qp >= p.seq_len) continue;
    const float l = L[item * p.s_q + i];
    if (l == -INFINITY) continue;
    const int64_t qoff = (static_cast<int64_t>(bi) * p.s_q + i) * q_stride + static_cast<int64_t>(hh) * d;
    // The query row is read from global memory at every key (cached): a local copy of up to
    // kF32MaxHeadDim floats made ptxas spill on sm_90a.
    const float* qr = Q + qoff;
    const int slot = p.row_slot ? p.row_slot[i] : -1;
    float* row = slot >= 0 && rows ? rows + (item * p.n_rows + slot) * p.seq_len : nullptr;
    float* prow = pooled ? pooled + (item * p.n_pool + g) * p.n_pool : nullptr;
    float* st = stats + (item * p.seq_len + qp) * p.width;
    const int qd = mk.qdoc(i);
    double entropy = 0.0, distance = 0.0;
    for (int j = 0; j < p.s_k; ++j) {
      const int kp = mk.kpos(j);
      if (kp >= p.seq_len || !mk.visible(qp, qd, kp, mk.kdoc(j))) continue;
      const float* kj = Kb + static_cast<int64_t>(j) * kv_stride;
      float s = 0.0f;
      for (int c = 0; c < d; ++c) s += qr[c] * kj[c];
      s *= p.scale;
      const float pr = expf(s - l);
      if (row) row[kp] += pr;
      if (prow) prow[kp / p.pool] += pr;
      entropy += static_cast<double>(pr) * (l - s);
      distance += static_cast<double>(pr) * (qp - kp);
      for (int m = 0; m < p.n_spans; ++m)
        if (kp >= p.spans[2 * m] && kp < p.spans[2 * m + 1]) st[kProbStats + m] += pr;
    }
    st[0] += static_cast<float>(entropy);
    st[1] += static_cast<float>(distance);
  }
}

gpu::Status attention_probs_f32(const AttentionArgs& a, const AttentionProbsArgs& pa, const float* q, const float* k,
                                const float* lse, float* rows, float* pooled, float* stats, gpu::Stream stream) {
  RT_CHECK(pa.seq_len > 0 && (pa.pool == 0 || pa.seq_len % pa.pool == 0), "attention_probs: seq_len ", pa.seq_len,
           " pool ", pa.pool);
  ProbsParams p{};
  static_cast<AttnParams&>(p) = attn_f32_params(a, "attention_probs");
  p.seq_len = pa.seq_len;
  p.n_rows = pa.n_rows;
  p.pool = pa.pool;
  p.n_pool = pa.n_pool();
  p.n_spans = pa.n_spans;
  p.width = pa.stat_width();
  p.row_slot = pa.row_slot;
  p.spans = pa.spans;
  const int groups = pa.seq_len / (pa.pool > 0 ? pa.pool : 1);
  if (a.b == 0 || a.s_q == 0 || a.s_k == 0) return gpu::Status::kSuccess;
  const dim3 grid(static_cast<unsigned>((groups + kThreads - 1) / kThreads), static_cast<unsigned>(a.h),
                  static_cast<unsigned>(a.b));
  return gpu::launch(attention_probs_kernel, grid, dim3(kThreads), 0, stream, p, q, k, lse, rows, pooled, stats);
}

}  // namespace ringtrain::cuda
