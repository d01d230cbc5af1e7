// Device helpers shared by the attention forward and backward kernels (private to kernels/cuda).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/attention.h"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

// What the mask of kernels/attention.h makes of one (query tile, key tile) pair.
enum class TileKind { kSkip, kFull, kMasked };

// Position and document-id ranges of a tile's rows: min/max, since a zigzag shard's positions
// (and so its ids) are not monotone along the tile. Without documents doc_lo = doc_hi = 0.
struct TileRange {
  int pos_lo, pos_hi, doc_lo, doc_hi;
};

// The mask of kernels/attention.h on the device, for the document ids of one sample:
//   visible(i, j) = (!causal || k_pos[j] <= q_pos[i]) && q_doc[i] == k_doc[j]
//                && (window == 0 || q_pos[i] - k_pos[j] < window)
// Positions are shared by the batch; kernel parameters hold the document ids of sample 0 and a
// CTA takes sample(bi, s_q, s_k). Null ids: one document (every id 0).
struct AttnMask {
  bool causal;
  int window;
  const int32_t* q_pos;  // [s_q], null: 0..s_q-1
  const int32_t* k_pos;  // [s_k], null: 0..s_k-1
  const int32_t* q_doc;  // [b, s_q] or null
  const int32_t* k_doc;  // [b, s_k] or null

  __device__ __forceinline__ AttnMask sample(int bi, int s_q, int s_k) const {
    AttnMask m = *this;
    if (q_doc != nullptr) {
      m.q_doc = q_doc + static_cast<int64_t>(bi) * s_q;
      m.k_doc = k_doc + static_cast<int64_t>(bi) * s_k;
    }
    return m;
  }
  __device__ __forceinline__ int qpos(int i) const { return q_pos ? q_pos[i] : i; }
  __device__ __forceinline__ int kpos(int j) const { return k_pos ? k_pos[j] : j; }
  __device__ __forceinline__ int qdoc(int i) const { return q_doc ? q_doc[i] : 0; }
  __device__ __forceinline__ int kdoc(int j) const { return k_doc ? k_doc[j] : 0; }
  __device__ __forceinline__ bool visible(int qp, int qd, int kp, int kd) const {
    return (!causal || kp <= qp) && qd == kd && (window == 0 || qp - kp < window);
  }
  __device__ __forceinline__ TileRange q_range(int i0, int n) const { return range(q_pos, q_doc, i0, n); }
  __device__ __forceinline__ TileRange k_range(int j0, int n) const { return range(k_pos, k_doc, j0, n); }

  // Skip when no pair can be visible: every key in the future of every query, the id ranges
  // disjoint, or every key at least `window` before every query. Full when every pair is:
  // every key at or before every query, one id on both sides, every distance below the window.
  // Anything else straddles a diagonal, a document boundary or a window edge.
  __device__ __forceinline__ TileKind classify(const TileRange& q, const TileRange& k) const {
    if ((causal && k.pos_lo > q.pos_hi) || k.doc_hi < q.doc_lo || k.doc_lo > q.doc_hi ||
        (window != 0 && q.pos_lo - k.pos_hi >= window))
      return TileKind::kSkip;
    const bool full = (!causal || k.pos_hi <= q.pos_lo) && (q.doc_lo == q.doc_hi && k.doc_lo == k.doc_hi && q.doc_lo == k.doc_lo) &&
                      (window == 0 || q.pos_hi - k.pos_lo < window);
    return full ? TileKind::kFull : TileKind::kMasked;
  }

 private:
  __device__ __forceinline__ static TileRange range(const int32_t* pos, const int32_t* doc, int i0, int n) {
    TileRange r{pos ? pos[i0] : i0, 0, doc ? doc[i0] : 0, 0};
    r.pos_hi = r.pos_lo;
    r.doc_hi = r.doc_lo;
    for (int i = i0 + 1; i < i0 + n; ++i) {
      const int p = pos ? pos[i] : i;
      r.pos_lo = min(r.pos_lo, p);
      r.pos_hi = max(r.pos_hi, p);
      if (doc != nullptr) {
        r.doc_lo = min(r.doc_lo, doc[i]);
        r.doc_hi = max(r.doc_hi, doc[i]);
      }
    }
    return r;
  }
};

// The device mask of host-side arguments (pointers already device memory); refuses ids on one
// side only and a negative window.
inline AttnMask attn_mask(const AttentionArgs& a, const char* what) {
  RT_CHECK((a.q_doc == nullptr) == (a.k_doc == nullptr), what, ": document ids for one side only");
  RT_CHECK(a.window >= 0, what, ": window ", a.window, " must be at least 0");
  return AttnMask{a.causal, a.window, a.q_pos, a.k_pos, a.q_doc, a.k_doc};
}

// The shape, scale and mask every attention kernel reads (attention_f32.cu; attention_probs.cu
// and the flash kernels extend it), checked and filled once from the host's arguments. The fp32
// kernels take head dims up to kF32MaxHeadDim: they keep a row per thread.
inline constexpr int kF32MaxHeadDim = 256;
struct AttnParams {
  int s_q, s_k, h, h_kv, d, group;
  float scale;
  AttnMask mask;
};
inline AttnParams attn_f32_params(const AttentionArgs& a, const char* what) {
  RT_CHECK(a.d >= 1 && a.d <= kF32MaxHeadDim, what, ": head dim ", a.d, " is not supported (1..", kF32MaxHeadDim,
           ")");
  RT_CHECK(a.b >= 0 && a.s_q >= 0 && a.s_k >= 0 && a.h >= 1 && a.h_kv >= 1 && a.h % a.h_kv == 0, what,
           ": bad shape b ", a.b, " s_q ", a.s_q, " s_k ", a.s_k, " h ", a.h, " h_kv ", a.h_kv);
  RT_CHECK(a.h <= 65535 && a.b <= 65535, what, ": h ", a.h, " and b ", a.b, " must be at most 65535");
  AttnParams p{};
  p.s_q = a.s_q;
  p.s_k = a.s_k;
  p.h = a.h;
  p.h_kv = a.h_kv;
  p.d = a.d;
  p.group = a.h / a.h_kv;
  p.scale = a.scale != 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.d));
  p.mask = attn_mask(a, what);
  return p;
}

// The parameters of the bf16/f16 flash kernels (attention_fwd.cu and attention_bwd.cu): the
// fp32 kernels' (same checks) and the softmax scale in base 2; head dim 64 or 128 (the tile
// shapes), at least one sequence (b is the grid's z).
struct FlashParams : AttnParams {
  float scale_log2;
};
inline FlashParams attn_flash_params(const AttentionArgs& a, const char* what) {
  RT_CHECK(a.d == 64 || a.d == 128, what, ": head dim ", a.d, " is not supported (64 or 128)");
  RT_CHECK(a.b >= 1, what, ": batch ", a.b, " must be at least 1");
  FlashParams p{};
  static_cast<AttnParams&>(p) = attn_f32_params(a, what);
  p.scale_log2 = p.scale * 1.4426950408889634f;  // log2(e)
  return p;
}

// d += a b on tensor cores, m16n8k16 with fp32 accumulators, in the element type T.
template <typename T>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) gpu::mma_m16n8k16_bf16(d, a, b, d);
  else gpu::mma_m16n8k16_f16(d, a, b, d);
}

__device__ __forceinline__ uint32_t pack_float2(float lo, float hi, __nv_bfloat16*) {
  return gpu::pack2(__float2bfloat16(lo), __float2bfloat16(hi));
}
__device__ __forceinline__ uint32_t pack_float2(float lo, float hi, __half*) {
  return gpu::pack2(__float2half(lo), __float2half(hi));
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// The A fragment (m16 x k16) of columns 16j..16j+15 from the accumulators of the two m16n8
// tiles 2j (lo) and 2j+1 (hi): in the PTX ISA's mma.m16n8k16 layouts a lane holds the same
// (row, column) pairs in the C fragment of an n8 tile as in the matching half of the A
// fragment, so P (or dS) feeds the next product from registers, rounded to T.
template <typename T>
__device__ __forceinline__ void a_fragment_from_acc(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_float2(lo[0], lo[1], static_cast<T*>(nullptr));
  a[1] = pack_float2(lo[2], lo[3], static_cast<T*>(nullptr));
  a[2] = pack_float2(hi[0], hi[1], static_cast<T*>(nullptr));
  a[3] = pack_float2(hi[2], hi[3], static_cast<T*>(nullptr));
}

// c0, c1 (the n8 tiles 0 and 1) += a B, B the k16 x n16 tile at `tile` of a row-major [k][n]
// shared array with row stride ld elements (16-byte aligned rows), loaded transposed into B
// fragments by one ldmatrix.x4.trans: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
// (k 8-15, n 8-15). The step of every P V-shaped product: O += P V, dV += P^T dO, dK += dS^T Q,
// dQ += dS K.
template <typename T>
__device__ __forceinline__ void mma_acc_kn_tile(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4], const T* tile,
                                                int ld, int lane) {
  uint32_t r[4];
  gpu::ldmatrix_x4_trans(r, tile + (lane % 8 + ((lane / 8) & 1) * 8) * ld + (lane / 16) * 8);
  const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
  mma<T>(c0, a, b0);
  mma<T>(c1, a, b1);
}

}  // namespace ringtrain::cuda
