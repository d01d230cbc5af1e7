// fp32 attention through the GPU layer (kernels/cuda/ops_cuda.h, "fp32 attention"): the
// contract of kernels/attention.h with every pointer in device memory, any head dim up to
// kMaxHeadDim, GQA, explicit positions. The simple, exact-order version: the reference the
// bf16 flash kernels and the CPU path are compared with, and the fp32 path of the trainer.
//
//   forward:  one thread per (batch, head, query row). The query row and the output
//             accumulator live in per-thread local arrays (interleaved across the warp by the
//             hardware, so their accesses coalesce); the keys are visited in ascending order
//             with a one-key-at-a-time online softmax (running max m and sum l, the
//             accumulator rescaled by exp(m_old - m_new) only when the max grows).
//             Threads of a block are consecutive query rows of one head: they read the same
//             key/value row at the same time (a broadcast).
//   delta:    one thread per (batch, head, query row), rowsum(dout * out) in double.
//   dQ:       one thread per (batch, head, query row): P = exp(scale q.k - lse) recomputed
//             from the final lse, dS = P (dout.v - delta), dq += scale sum_j dS_j k_j.
//   dK, dV:   one thread per (batch, kv head, key row), looping over the query heads of its
//             group and all query rows in ascending order: dv += sum P dout,
//             dk += scale sum dS q.
//   merge:    one thread per (batch, query row, head) row, the max-shifted lse merge.
// Every output element is written by exactly one thread, summed in a fixed order, no atomics
// and no shared memory: bitwise the same on every run and under every emulator schedule.
// The mask (causal by position, document ids, sliding window: AttnMask in attention_tiles.cuh)
// is evaluated per (query, key) pair before anything is read: an invisible key costs two id and
// two position loads, never a dot product; a row that sees no key gets lse = -inf, out = 0 and
// contributes no gradient. The unit of work here is one row, so there are no tiles to skip.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/ops_cuda.h"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

// Outside the anonymous namespace so the kernels taking it keep external linkage (their
// names then appear in the emulator's traces and messages).
namespace {

constexpr int kMaxHeadDim = kF32MaxHeadDim;  // the per-thread local rows
constexpr int kRowThreads = 128;  // threads per block of the row kernels

dim3 row_grid(int rows, int heads, int b) {
  return dim3(static_cast<unsigned>((rows + kRowThreads - 1) / kRowThreads), static_cast<unsigned>(heads),
              static_cast<unsigned>(b));
}

}  // namespace

// Grid (s_q / 128, h, b); thread = query row i of head hh.
// static-check: attention_f32_forward_kernel smem=0
__global__ void __launch_bounds__(kRowThreads) attention_f32_forward_kernel(AttnParams p, const float* Q, const float* K,
                                                                            const float* V, float* O, float* L) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x, hh = blockIdx.y, bi = blockIdx.z;
  if (i >= p.s_q) return;
  const int d = p.d, kvh = hh / p.group;
  const int64_t q_stride = static_cast<int64_t>(p.h) * d, kv_stride = static_cast<int64_t>(p.h_kv) * d;
  const int64_t qoff = (static_cast<int64_t>(bi) * p.s_q + i) * q_stride + static_cast<int64_t>(hh) * d;
  const float* Kb = K + static_cast<int64_t>(bi) * p.s_k * kv_stride + static_cast<int64_t>(kvh) * d;
  const float* Vb = V + static_cast<int64_t>(bi) * p.s_k * kv_stride + static_cast<int64_t>(kvh) * d;

  float qr[kMaxHeadDim], acc[kMaxHeadDim];
  for (int c = 0; c < d; ++c) {
    qr[c] = Q[qoff + c];
    acc[c] = 0.0f;
  }
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);
  const int qp = mk.qpos(i), qd = mk.qdoc(i);
  float m = -INFINITY, l = 0.0f;
  for (int j = 0; j < p.s_k; ++j) {
    if (!mk.visible(qp, qd, mk.kpos(j), mk.kdoc(j))) continue;
    const float* kj = Kb + static_cast<int64_t>(j) * kv_stride;
    const float* vj = Vb + static_cast<int64_t>(j) * kv_stride;
    float s = 0.0f;
    for (int c = 0; c < d; ++c) s += qr[c] * kj[c];
    s *= p.scale;
    float alpha = 1.0f, pj;
    if (s > m) {  // the max grows: rescale what was summed so far (alpha = 0 from -inf)
      alpha = expf(m - s);
      m = s;
      pj = 1.0f;
    } else {
      pj = expf(s - m);
    }
    l = l * alpha + pj;
    for (int c = 0; c < d; ++c) acc[c] = acc[c] * alpha + pj * vj[c];
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int c = 0; c < d; ++c) O[qoff + c] = acc[c] * inv;
  if (L != nullptr) L[(static_cast<int64_t>(bi) * p.h + hh) * p.s_q + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// One thread per element r of delta [b, h, s_q].
// static-check: attention_f32_delta_kernel smem=0
__global__ void __launch_bounds__(256) attention_f32_delta_kernel(int64_t n_rows, int h, int s_q, int d,
                                                                  const float* O, const float* dO, float* delta) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // (bi * h + hh) * s_q + i
  if (r >= n_rows) return;
  const int64_t i = r % s_q, hh = (r / s_q) % h, bi = r / (static_cast<int64_t>(s_q) * h);
  const int64_t off = ((bi * s_q + i) * h + hh) * d;
  double acc = 0.0;
  for (int c = 0; c < d; ++c) acc += static_cast<double>(O[off + c]) * static_cast<double>(dO[off + c]);
  delta[r] = static_cast<float>(acc);
}

// Grid (s_q / 128, h, b); thread = query row i of head hh; dq[i] += this block's share.
// static-check: attention_f32_dq_kernel smem=0
__global__ void __launch_bounds__(kRowThreads) attention_f32_dq_kernel(AttnParams p, const float* Q, const float* K,
                                                                       const float* V, const float* dO,
                                                                       const float* L, const float* Dl, float* dQ) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x, hh = blockIdx.y, bi = blockIdx.z;
  if (i >= p.s_q) return;
  const int64_t li = (static_cast<int64_t>(bi) * p.h + hh) * p.s_q + i;
  const float lse = L[li];
  if (lse == -INFINITY) return;  // the row sees no key at all: no gradient
  const float delta = Dl[li];
  const int d = p.d, kvh = hh / p.group;
  const int64_t q_stride = static_cast<int64_t>(p.h) * d, kv_stride = static_cast<int64_t>(p.h_kv) * d;
  const int64_t qoff = (static_cast<int64_t>(bi) * p.s_q + i) * q_stride + static_cast<int64_t>(hh) * d;
  const float* Kb = K + static_cast<int64_t>(bi) * p.s_k * kv_stride + static_cast<int64_t>(kvh) * d;
  const float* Vb = V + static_cast<int64_t>(bi) * p.s_k * kv_stride + static_cast<int64_t>(kvh) * d;

  float qr[kMaxHeadDim], gr[kMaxHeadDim], acc[kMaxHeadDim];
  for (int c = 0; c < d; ++c) {
    qr[c] = Q[qoff + c];
    gr[c] = dO[qoff + c];
    acc[c] = 0.0f;
  }
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);
  const int qp = mk.qpos(i), qd = mk.qdoc(i);
  for (int j = 0; j < p.s_k; ++j) {
    if (!mk.visible(qp, qd, mk.kpos(j), mk.kdoc(j))) continue;
    const float* kj = Kb + static_cast<int64_t>(j) * kv_stride;
    const float* vj = Vb + static_cast<int64_t>(j) * kv_stride;
    float s = 0.0f, dp = 0.0f;
    for (int c = 0; c < d; ++c) {
      s += qr[c] * kj[c];
      dp += gr[c] * vj[c];
    }
    const float pij = expf(s * p.scale - lse);
    const float ds = pij * (dp - delta);
    for (int c = 0; c < d; ++c) acc[c] += ds * kj[c];
  }
  for (int c = 0; c < d; ++c) dQ[qoff + c] += p.scale * acc[c];
}

// Grid (s_k / 128, h_kv, b); thread = key row j of kv head kvh; dk[j], dv[j] += this block's
// share, the group's query heads and their rows summed in ascending order.
// static-check: attention_f32_dkdv_kernel smem=0
__global__ void __launch_bounds__(kRowThreads) attention_f32_dkdv_kernel(AttnParams p, const float* Q, const float* K,
                                                                         const float* V, const float* dO,
                                                                         const float* L, const float* Dl, float* dK,
                                                                         float* dV) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, kvh = blockIdx.y, bi = blockIdx.z;
  if (j >= p.s_k) return;
  const int d = p.d;
  const int64_t q_stride = static_cast<int64_t>(p.h) * d, kv_stride = static_cast<int64_t>(p.h_kv) * d;
  const int64_t koff = (static_cast<int64_t>(bi) * p.s_k + j) * kv_stride + static_cast<int64_t>(kvh) * d;

  float kr[kMaxHeadDim], vr[kMaxHeadDim], dk[kMaxHeadDim], dv[kMaxHeadDim];
  for (int c = 0; c < d; ++c) {
    kr[c] = K[koff + c];
    vr[c] = V[koff + c];
    dk[c] = 0.0f;
    dv[c] = 0.0f;
  }
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);
  const int kp = mk.kpos(j), kd = mk.kdoc(j);
  for (int hh = kvh * p.group; hh < (kvh + 1) * p.group; ++hh) {
    const float* Qb = Q + static_cast<int64_t>(bi) * p.s_q * q_stride + static_cast<int64_t>(hh) * d;
    const float* Gb = dO + static_cast<int64_t>(bi) * p.s_q * q_stride + static_cast<int64_t>(hh) * d;
    const float* Lh = L + (static_cast<int64_t>(bi) * p.h + hh) * p.s_q;
    const float* Dh = Dl + (static_cast<int64_t>(bi) * p.h + hh) * p.s_q;
    for (int i = 0; i < p.s_q; ++i) {
      if (!mk.visible(mk.qpos(i), mk.qdoc(i), kp, kd)) continue;
      const float lse = Lh[i];
      if (lse == -INFINITY) continue;  // the row sees no key at all
      const float* qi = Qb + static_cast<int64_t>(i) * q_stride;
      const float* gi = Gb + static_cast<int64_t>(i) * q_stride;
      float s = 0.0f, dp = 0.0f;
      for (int c = 0; c < d; ++c) {
        s += qi[c] * kr[c];
        dp += gi[c] * vr[c];
      }
      const float pij = expf(s * p.scale - lse);
      const float ds = pij * (dp - Dh[i]);
      for (int c = 0; c < d; ++c) {
        dv[c] += pij * gi[c];
        dk[c] += ds * qi[c];
      }
    }
  }
  for (int c = 0; c < d; ++c) {
    dK[koff + c] += p.scale * dk[c];
    dV[koff + c] += dv[c];
  }
}

// One thread per row r = (bi * s_q + i) * h + hh of out [b, s_q, h, d]; it alone reads and
// writes that row and its lse, so the in-place update has no race.
// static-check: attention_f32_merge_kernel smem=0
__global__ void __launch_bounds__(256) attention_f32_merge_kernel(int64_t n_rows, int s_q, int h, int d, float* O,
                                                                  float* L, const float* Ob, const float* Lb) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n_rows) return;
  const int64_t hh = r % h, i = (r / h) % s_q, bi = r / (static_cast<int64_t>(h) * s_q);
  const int64_t li = (bi * h + hh) * s_q + i;
  float* o = O + r * d;
  const float* ob = Ob + r * d;
  const float la = L[li], lb = Lb[li];
  if (lb == -INFINITY) return;  // the block saw nothing: (out, lse) unchanged
  if (la == -INFINITY) {        // nothing so far: take the block as is
    for (int c = 0; c < d; ++c) o[c] = ob[c];
    L[li] = lb;
    return;
  }
  // e = exp(min - max) <= 1: lse' = max + log1p(e); the weights exp(lse_x - lse') are
  // 1 / (1 + e) for the larger lse and e / (1 + e) for the smaller, formed from e directly.
  const float hi = fmaxf(la, lb), e = expf(fminf(la, lb) - hi);
  const float w_hi = 1.0f / (1.0f + e), w_lo = e * w_hi;
  const float wa = la >= lb ? w_hi : w_lo, wb = la >= lb ? w_lo : w_hi;
  for (int c = 0; c < d; ++c) o[c] = o[c] * wa + ob[c] * wb;
  L[li] = hi + log1pf(e);
}

gpu::Status attention_forward_f32(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                  float* out, float* lse, gpu::Stream stream) {
  const AttnParams p = attn_f32_params(a, "attention_forward_f32");
  if (a.b == 0 || a.s_q == 0) return gpu::Status::kSuccess;
  return gpu::launch(attention_f32_forward_kernel, row_grid(a.s_q, a.h, a.b), dim3(kRowThreads), 0, stream, p, q, k,
                     v, out, lse);
}

gpu::Status attention_backward_delta_f32(const AttentionArgs& a, const float* out, const float* dout, float* delta,
                                         gpu::Stream stream) {
  attn_f32_params(a, "attention_backward_delta_f32");
  const int64_t n = static_cast<int64_t>(a.b) * a.h * a.s_q;
  if (n == 0) return gpu::Status::kSuccess;
  const int64_t blocks = (n + 255) / 256;
  RT_CHECK(blocks <= 0x7fffffff, "attention_backward_delta_f32: too many rows ", n);
  return gpu::launch(attention_f32_delta_kernel, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream, n, a.h,
                     a.s_q, a.d, out, dout, delta);
}

gpu::Status attention_backward_f32(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                   const float* dout, const float* lse, const float* delta, float* dq, float* dk,
                                   float* dv, gpu::Stream stream) {
  const AttnParams p = attn_f32_params(a, "attention_backward_f32");
  if (a.b == 0 || a.s_q == 0 || a.s_k == 0) return gpu::Status::kSuccess;  // nothing to add
  gpu::Status s = gpu::launch(attention_f32_dq_kernel, row_grid(a.s_q, a.h, a.b), dim3(kRowThreads), 0, stream, p, q,
                              k, v, dout, lse, delta, dq);
  if (s != gpu::Status::kSuccess) return s;
  return gpu::launch(attention_f32_dkdv_kernel, row_grid(a.s_k, a.h_kv, a.b), dim3(kRowThreads), 0, stream, p, q, k,
                     v, dout, lse, delta, dk, dv);
}

gpu::Status attention_merge_f32(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                                const float* lse_b, gpu::Stream stream) {
  RT_CHECK(b >= 0 && s_q >= 0 && h >= 1 && d >= 1, "attention_merge_f32: bad shape b ", b, " s_q ", s_q, " h ", h,
           " d ", d);
  const int64_t n = static_cast<int64_t>(b) * s_q * h;
  if (n == 0) return gpu::Status::kSuccess;
  const int64_t blocks = (n + 255) / 256;
  RT_CHECK(blocks <= 0x7fffffff, "attention_merge_f32: too many rows ", n);
  return gpu::launch(attention_f32_merge_kernel, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream, n, s_q, h,
                     d, out, lse, out_b, lse_b);
}

}  // namespace ringtrain::cuda
