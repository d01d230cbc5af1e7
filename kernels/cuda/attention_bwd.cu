// FlashAttention-2 backward on tensor cores through the GPU layer (kernels/cuda/attention_cuda.h).
//
// Deterministic: every gradient element is written by exactly one thread, with a fixed order of
// accumulation, so the same inputs give bitwise the same gradients on every run. The cost: the
// probabilities are recomputed twice (once in the dK/dV pass over key tiles, once in the dQ
// pass over query tiles) instead of accumulating dQ with atomics in the dK/dV pass: about 1.4x
// the tensor-core work of the atomic version (Q Kᵀ and dO Vᵀ twice: 7 instead of 5 matmuls).
//
//   1. delta[b, h, i] = rowsum(dO ∘ O) in fp32 (attention_bwd_delta_kernel).
//   2. dK, dV: one CTA per 64 keys of one kv head (4 warps x 16 keys), looping over the query
//      heads of its GQA group and their 32-row query tiles (double-buffered by cp.async): Sᵀ =
//      K Qᵀ, Pᵀ = exp(Sᵀ scale - lse), dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ - delta),
//      dK += dSᵀ Q. The GQA reduction happens in registers (the group's heads are summed in
//      order).
//   3. dQ: one CTA per 64 query rows of one head (4 warps x 16 rows), looping over 64-key tiles:
//      S, P, dP = dO Vᵀ, dS, dQ += dS K.
// The mask (positions, document ids, window: AttnMask in attention_tiles.cuh) is classified per
// (query tile, key tile) pair from their position and id ranges: pairs with no visible element
// are skipped (never loaded), only straddling or tail tiles evaluate the mask per element.
// Gradients are fp32 and overwritten.
//
// Budgets (128 threads per CTA; no static shared memory):
//   dK/dV: K, V [64][d+8] + Q, dO [2][32][d+8] (16-bit) + lse, delta [2][32] fp32:
//          37,120 B (d = 64), 69,888 B (d = 128); accumulators dK, dV d fp32 per thread.
//   dQ:    Q, dO [64][d+8] + K, V [2][64][d+8]: 55,296 B (d = 64), 104,448 B (d = 128).
#include <cmath>
#include <type_traits>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_tiles.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kKeys = 64;      // keys per CTA (dK/dV) and per key tile (dQ)
constexpr int kQTile = 32;     // query rows per tile in the dK/dV pass
constexpr int kQRows = 64;     // query rows per CTA in the dQ pass
constexpr float kLog2e = 1.4426950408889634f;

}  // namespace

// delta[b, h, i] = sum_c dO[b, i, h, c] O[b, i, h, c], one thread per (b, i, h), fp32 in order.
template <typename T>
__global__ void attention_bwd_delta_kernel(int n_rows, int h, int s_q, int d, const T* O, const T* dO, float* delta) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;  // r = (bi * s_q + i) * h + hh
  if (r >= n_rows) return;
  const T* o = O + static_cast<int64_t>(r) * d;
  const T* g = dO + static_cast<int64_t>(r) * d;
  float acc = 0.0f;
  for (int c = 0; c < d; ++c) acc += to_float(o[c]) * to_float(g[c]);
  const int hh = r % h, bi_i = r / h, i = bi_i % s_q, bi = bi_i / s_q;
  delta[(static_cast<int64_t>(bi) * h + hh) * s_q + i] = acc;
}

// static-check: attention_bwd_dkdv_kernel smem=0 threads=128 hmma
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_bwd_dkdv_kernel(FlashParams p, const T* Q, const T* K, const T* V,
                                                                      const T* dO, const float* L, const float* Dl,
                                                                      float* dK, float* dV) {
  constexpr int kLd = D + 8, kChunks = D / 8;
  T* Ks = gpu::dynamic_smem<T>();    // [kKeys][kLd]
  T* Vs = Ks + kKeys * kLd;          // [kKeys][kLd]
  T* Qs = Vs + kKeys * kLd;          // [2][kQTile][kLd]
  T* Gs = Qs + 2 * kQTile * kLd;     // dO: [2][kQTile][kLd]
  float* Ls = reinterpret_cast<float*>(Gs + 2 * kQTile * kLd);  // [2][kQTile] lse * log2(e)
  float* Ds = Ls + 2 * kQTile;                                   // [2][kQTile] delta
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const int k0 = blockIdx.x * kKeys, kvh = blockIdx.y, bi = blockIdx.z;
  const int64_t q_stride = static_cast<int64_t>(p.h) * D, kv_stride = static_cast<int64_t>(p.h_kv) * D;
  const int k_rows = min(kKeys, p.s_k - k0);
  const int n_qt = (p.s_q + kQTile - 1) / kQTile, n_it = p.group * n_qt;
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);
  const TileRange kr_range = mk.k_range(k0, k_rows);
  // The next iteration it = (query head of the group, query tile) from `from` with a visible
  // pair, and whether it needs the per-element mask (also at a tail of queries or keys).
  auto next_it = [&](int from, bool& masked) {
    for (int it = from; it < n_it; ++it) {
      const int q0 = (it % n_qt) * kQTile, rows = min(kQTile, p.s_q - q0);
      const TileKind kind = mk.classify(mk.q_range(q0, rows), kr_range);
      if (kind == TileKind::kSkip) continue;
      masked = kind == TileKind::kMasked || rows < kQTile || k_rows < kKeys;
      return it;
    }
    return n_it;
  };
  auto load_q = [&](int stage, int it) {
    const int hh = kvh * p.group + it / n_qt, q0 = (it % n_qt) * kQTile;
    const T* Qb = Q + static_cast<int64_t>(bi) * p.s_q * q_stride + hh * D;
    const T* Gb = dO + static_cast<int64_t>(bi) * p.s_q * q_stride + hh * D;
    for (int c = t; c < kQTile * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = q0 + r < p.s_q;
      const int64_t off = ok ? (q0 + r) * q_stride + col : 0;
      gpu::cp_async<16>(Qs + (stage * kQTile + r) * kLd + col, Qb + off, ok ? 16 : 0);
      gpu::cp_async<16>(Gs + (stage * kQTile + r) * kLd + col, Gb + off, ok ? 16 : 0);
    }
    if (t < kQTile) {
      const int64_t li = (static_cast<int64_t>(bi) * p.h + hh) * p.s_q + q0 + t;
      const bool ok = q0 + t < p.s_q;
      Ls[stage * kQTile + t] = ok ? L[li] * kLog2e : -INFINITY;
      Ds[stage * kQTile + t] = ok ? Dl[li] : 0.0f;
    }
  };

  float dk[D / 8][4], dv[D / 8][4];
  for (int n = 0; n < D / 8; ++n)
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
  // This thread's two keys (rows of Sᵀ), their positions and document ids.
  const int kr = warp * 16 + lane / 4;
  const bool key_ok[2] = {kr < k_rows, kr + 8 < k_rows};
  const int key_pos[2] = {key_ok[0] ? mk.kpos(k0 + kr) : 0, key_ok[1] ? mk.kpos(k0 + kr + 8) : 0};
  const int key_doc[2] = {key_ok[0] ? mk.kdoc(k0 + kr) : 0, key_ok[1] ? mk.kdoc(k0 + kr + 8) : 0};

  bool masked_cur = false, masked_next = false;
  int it = next_it(0, masked_cur);
  if (it < n_it) {
    const T* Kb = K + static_cast<int64_t>(bi) * p.s_k * kv_stride + kvh * D;
    const T* Vb = V + static_cast<int64_t>(bi) * p.s_k * kv_stride + kvh * D;
    for (int c = t; c < kKeys * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = r < k_rows;
      const int64_t off = ok ? r * kv_stride + col : 0;
      gpu::cp_async<16>(Ks + r * kLd + col, Kb + k0 * kv_stride + off, ok ? 16 : 0);
      gpu::cp_async<16>(Vs + r * kLd + col, Vb + k0 * kv_stride + off, ok ? 16 : 0);
    }
    load_q(0, it);
    gpu::cp_async_commit();
  }
  for (int stage = 0; it < n_it; stage ^= 1) {
    const int it_next = next_it(it + 1, masked_next);
    if (it_next < n_it) {
      load_q(stage ^ 1, it_next);
      gpu::cp_async_commit();
      gpu::cp_async_wait<1>();
    } else {
      gpu::cp_async_wait<0>();
    }
    __syncthreads();
    const T* qs = Qs + stage * kQTile * kLd;
    const T* gs = Gs + stage * kQTile * kLd;
    const float* ls = Ls + stage * kQTile;
    const float* ds = Ds + stage * kQTile;
    const int q0 = (it % n_qt) * kQTile;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ: 16 keys x 32 queries per warp (4 n-tiles).
    float s[kQTile / 8][4], dp[kQTile / 8][4];
    for (int n = 0; n < kQTile / 8; ++n)
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ak[4], av[4];
      gpu::ldmatrix_x4(ak, Ks + (warp * 16 + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
      gpu::ldmatrix_x4(av, Vs + (warp * 16 + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
      for (int np = 0; np < kQTile / 16; ++np) {
        const int row = np * 16 + lane % 8 + (lane / 16) * 8, col = kk * 16 + ((lane / 8) & 1) * 8;
        uint32_t rq[4], rg[4];
        gpu::ldmatrix_x4(rq, qs + row * kLd + col);
        gpu::ldmatrix_x4(rg, gs + row * kLd + col);
        const uint32_t bq0[2] = {rq[0], rq[1]}, bq1[2] = {rq[2], rq[3]};
        const uint32_t bg0[2] = {rg[0], rg[1]}, bg1[2] = {rg[2], rg[3]};
        mma<T>(s[2 * np], ak, bq0);
        mma<T>(s[2 * np + 1], ak, bq1);
        mma<T>(dp[2 * np], av, bg0);
        mma<T>(dp[2 * np + 1], av, bg1);
      }
    }
    // Pᵀ (masked elements 0) and dSᵀ = Pᵀ (dPᵀ - delta).
    for (int n = 0; n < kQTile / 8; ++n)
      for (int e = 0; e < 4; ++e) {
        const int qc = n * 8 + 2 * (lane % 4) + (e & 1), half = e / 2;
        const float lq = ls[qc];
        bool live = lq != -INFINITY;
        if (masked_cur && live)
          live = key_ok[half] && q0 + qc < p.s_q &&
                 mk.visible(mk.qpos(q0 + qc), mk.qdoc(q0 + qc), key_pos[half], key_doc[half]);
        const float pe = live ? exp2f(s[n][e] * p.scale_log2 - lq) : 0.0f;
        s[n][e] = pe;
        dp[n][e] = pe * (dp[n][e] - ds[qc]);
      }
    // dV += Pᵀ dO and dK += dSᵀ Q (k = the 32 queries, 2 steps of 16).
    for (int j = 0; j < kQTile / 16; ++j) {
      uint32_t ap[4];
      a_fragment_from_acc<T>(ap, s[2 * j], s[2 * j + 1]);
      uint32_t ad[4];
      a_fragment_from_acc<T>(ad, dp[2 * j], dp[2 * j + 1]);
      for (int np = 0; np < D / 16; ++np) {  // dO and Q rows = queries 16j.., columns = d 16np..
        mma_acc_kn_tile<T>(dv[2 * np], dv[2 * np + 1], ap, gs + j * 16 * kLd + np * 16, kLd, lane);
        mma_acc_kn_tile<T>(dk[2 * np], dk[2 * np + 1], ad, qs + j * 16 * kLd + np * 16, kLd, lane);
      }
    }
    __syncthreads();  // the next iteration's copy overwrites this stage
    it = it_next;
    masked_cur = masked_next;
  }

  for (int half = 0; half < 2; ++half) {
    if (!key_ok[half]) continue;
    const int64_t row = (static_cast<int64_t>(bi) * p.s_k + k0 + kr + 8 * half) * kv_stride + kvh * D;
    for (int n = 0; n < D / 8; ++n) {
      const int c = n * 8 + 2 * (lane % 4);
      dK[row + c] = dk[n][2 * half] * p.scale;
      dK[row + c + 1] = dk[n][2 * half + 1] * p.scale;
      dV[row + c] = dv[n][2 * half];
      dV[row + c + 1] = dv[n][2 * half + 1];
    }
  }
}

// static-check: attention_bwd_dq_kernel smem=0 threads=128 hmma
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_bwd_dq_kernel(FlashParams p, const T* Q, const T* K, const T* V,
                                                                    const T* dO, const float* L, const float* Dl,
                                                                    float* dQ) {
  constexpr int kLd = D + 8, kChunks = D / 8;
  T* Qs = gpu::dynamic_smem<T>();  // [kQRows][kLd]
  T* Gs = Qs + kQRows * kLd;       // dO: [kQRows][kLd]
  T* Ks = Gs + kQRows * kLd;       // [2][kKeys][kLd]
  T* Vs = Ks + 2 * kKeys * kLd;    // [2][kKeys][kLd]
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const int q0 = blockIdx.x * kQRows, hh = blockIdx.y, bi = blockIdx.z, kvh = hh / p.group;
  const int64_t q_stride = static_cast<int64_t>(p.h) * D, kv_stride = static_cast<int64_t>(p.h_kv) * D;
  const T* Qb = Q + static_cast<int64_t>(bi) * p.s_q * q_stride + hh * D;
  const T* Gb = dO + static_cast<int64_t>(bi) * p.s_q * q_stride + hh * D;
  const T* Kb = K + static_cast<int64_t>(bi) * p.s_k * kv_stride + kvh * D;
  const T* Vb = V + static_cast<int64_t>(bi) * p.s_k * kv_stride + kvh * D;
  const int q_rows = min(kQRows, p.s_q - q0), n_tiles = (p.s_k + kKeys - 1) / kKeys;
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);
  const TileRange qr = mk.q_range(q0, q_rows);
  auto next_tile = [&](int from, bool& masked) {
    for (int kt = from; kt < n_tiles; ++kt) {
      const int k0 = kt * kKeys, rows = min(kKeys, p.s_k - k0);
      const TileKind kind = mk.classify(qr, mk.k_range(k0, rows));
      if (kind == TileKind::kSkip) continue;
      masked = kind == TileKind::kMasked || rows < kKeys;
      return kt;
    }
    return n_tiles;
  };
  auto load_kv = [&](int stage, int kt) {
    const int k0 = kt * kKeys;
    for (int c = t; c < kKeys * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = k0 + r < p.s_k;
      const int64_t off = ok ? (k0 + r) * kv_stride + col : 0;
      gpu::cp_async<16>(Ks + (stage * kKeys + r) * kLd + col, Kb + off, ok ? 16 : 0);
      gpu::cp_async<16>(Vs + (stage * kKeys + r) * kLd + col, Vb + off, ok ? 16 : 0);
    }
  };

  const int r0 = warp * 16 + lane / 4;
  const bool row_ok[2] = {r0 < q_rows, r0 + 8 < q_rows};
  const int row_pos[2] = {row_ok[0] ? mk.qpos(q0 + r0) : 0, row_ok[1] ? mk.qpos(q0 + r0 + 8) : 0};
  const int row_doc[2] = {row_ok[0] ? mk.qdoc(q0 + r0) : 0, row_ok[1] ? mk.qdoc(q0 + r0 + 8) : 0};
  float row_l[2], row_d[2];
  for (int half = 0; half < 2; ++half) {
    const int64_t li = (static_cast<int64_t>(bi) * p.h + hh) * p.s_q + q0 + r0 + 8 * half;
    row_l[half] = row_ok[half] ? L[li] * kLog2e : -INFINITY;
    row_d[half] = row_ok[half] ? Dl[li] : 0.0f;
  }
  float dq[D / 8][4];
  for (int n = 0; n < D / 8; ++n)
    for (int e = 0; e < 4; ++e) dq[n][e] = 0.0f;

  bool masked_cur = false, masked_next = false;
  int kt = next_tile(0, masked_cur);
  if (kt < n_tiles) {
    for (int c = t; c < kQRows * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = r < q_rows;
      const int64_t off = ok ? (q0 + r) * q_stride + col : 0;
      gpu::cp_async<16>(Qs + r * kLd + col, Qb + off, ok ? 16 : 0);
      gpu::cp_async<16>(Gs + r * kLd + col, Gb + off, ok ? 16 : 0);
    }
    load_kv(0, kt);
    gpu::cp_async_commit();
  }
  for (int stage = 0; kt < n_tiles; stage ^= 1) {
    const int kt_next = next_tile(kt + 1, masked_next);
    if (kt_next < n_tiles) {
      load_kv(stage ^ 1, kt_next);
      gpu::cp_async_commit();
      gpu::cp_async_wait<1>();
    } else {
      gpu::cp_async_wait<0>();
    }
    __syncthreads();
    const T* ks = Ks + stage * kKeys * kLd;
    const T* vs = Vs + stage * kKeys * kLd;

    // S = Q Kᵀ and dP = dO Vᵀ: 16 rows x 64 keys per warp.
    float s[kKeys / 8][4], dp[kKeys / 8][4];
    for (int n = 0; n < kKeys / 8; ++n)
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t aq[4], ag[4];
      gpu::ldmatrix_x4(aq, Qs + (warp * 16 + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
      gpu::ldmatrix_x4(ag, Gs + (warp * 16 + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
      for (int np = 0; np < kKeys / 16; ++np) {
        const int row = np * 16 + lane % 8 + (lane / 16) * 8, col = kk * 16 + ((lane / 8) & 1) * 8;
        uint32_t rk[4], rv[4];
        gpu::ldmatrix_x4(rk, ks + row * kLd + col);
        gpu::ldmatrix_x4(rv, vs + row * kLd + col);
        const uint32_t bk0[2] = {rk[0], rk[1]}, bk1[2] = {rk[2], rk[3]};
        const uint32_t bv0[2] = {rv[0], rv[1]}, bv1[2] = {rv[2], rv[3]};
        mma<T>(s[2 * np], aq, bk0);
        mma<T>(s[2 * np + 1], aq, bk1);
        mma<T>(dp[2 * np], ag, bv0);
        mma<T>(dp[2 * np + 1], ag, bv1);
      }
    }
    const int k0 = kt * kKeys;
    for (int n = 0; n < kKeys / 8; ++n)
      for (int e = 0; e < 4; ++e) {
        const int half = e / 2, j = k0 + n * 8 + 2 * (lane % 4) + (e & 1);
        bool live = row_l[half] != -INFINITY;
        if (masked_cur && live) live = j < p.s_k && mk.visible(row_pos[half], row_doc[half], mk.kpos(j), mk.kdoc(j));
        const float pe = live ? exp2f(s[n][e] * p.scale_log2 - row_l[half]) : 0.0f;
        dp[n][e] = pe * (dp[n][e] - row_d[half]);
      }
    // dQ += dS K (k = the 64 keys).
    for (int j = 0; j < kKeys / 16; ++j) {
      uint32_t ad[4];
      a_fragment_from_acc<T>(ad, dp[2 * j], dp[2 * j + 1]);
      for (int np = 0; np < D / 16; ++np)  // K rows = keys 16j.., columns = d 16np..
        mma_acc_kn_tile<T>(dq[2 * np], dq[2 * np + 1], ad, ks + j * 16 * kLd + np * 16, kLd, lane);
    }
    __syncthreads();
    kt = kt_next;
    masked_cur = masked_next;
  }

  for (int half = 0; half < 2; ++half) {
    if (!row_ok[half]) continue;
    float* out = dQ + (static_cast<int64_t>(bi) * p.s_q + q0 + r0 + 8 * half) * q_stride + hh * D;
    for (int n = 0; n < D / 8; ++n) {
      const int c = n * 8 + 2 * (lane % 4);
      out[c] = dq[n][2 * half] * p.scale;
      out[c + 1] = dq[n][2 * half + 1] * p.scale;
    }
  }
}

template <typename T>
gpu::Status attention_backward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* out,
                                    const T* dout, const float* lse, float* delta, float* dq, float* dk, float* dv,
                                    gpu::Stream stream) {
  const FlashParams p = attn_flash_params(a, "attention_backward_cuda");
  auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  RT_CHECK(aligned(q) && aligned(k) && aligned(v) && aligned(dout),
           "attention_backward_cuda: q, k, v and dout must be 16-byte aligned");
  gpu::Status s = gpu::Status::kSuccess;
  const int n_rows = a.b * a.s_q * a.h;
  if (out != nullptr && n_rows > 0) {
    s = gpu::launch(attention_bwd_delta_kernel<T>, (n_rows + kThreads - 1) / kThreads, kThreads, 0, stream, n_rows,
                    a.h, a.s_q, a.d, out, dout, delta);
    if (s != gpu::Status::kSuccess) return s;
  }
  auto run = [&](auto dkdv, auto dqk, int d) {
    const int smem_kv = (2 * kKeys + 4 * kQTile) * (d + 8) * 2 + 4 * kQTile * 4;
    const int smem_q = (2 * kQRows + 4 * kKeys) * (d + 8) * 2;
    gpu::Status st = gpu::Status::kSuccess;
    if (a.s_k > 0) {
      if ((st = gpu::func_set_max_dynamic_smem(dkdv, smem_kv)) != gpu::Status::kSuccess) return st;
      st = gpu::launch(dkdv, dim3((a.s_k + kKeys - 1) / kKeys, a.h_kv, a.b), kThreads, smem_kv, stream, p, q, k, v,
                       dout, lse, delta, dk, dv);
      if (st != gpu::Status::kSuccess) return st;
    }
    if (a.s_q > 0) {
      if ((st = gpu::func_set_max_dynamic_smem(dqk, smem_q)) != gpu::Status::kSuccess) return st;
      st = gpu::launch(dqk, dim3((a.s_q + kQRows - 1) / kQRows, a.h, a.b), kThreads, smem_q, stream, p, q, k, v, dout,
                       lse, delta, dq);
    }
    return st;
  };
  return a.d == 64 ? run(attention_bwd_dkdv_kernel<T, 64>, attention_bwd_dq_kernel<T, 64>, 64)
                   : run(attention_bwd_dkdv_kernel<T, 128>, attention_bwd_dq_kernel<T, 128>, 128);
}

template gpu::Status attention_backward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*,
                                                            const __nv_bfloat16*, const __nv_bfloat16*,
                                                            const __nv_bfloat16*, const __nv_bfloat16*, const float*,
                                                            float*, float*, float*, float*, gpu::Stream);
template gpu::Status attention_backward_cuda<__half>(const AttentionArgs&, const __half*, const __half*, const __half*,
                                                     const __half*, const __half*, const float*, float*, float*, float*,
                                                     float*, gpu::Stream);

}  // namespace ringtrain::cuda
