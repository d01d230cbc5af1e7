// FlashAttention-2 forward on tensor cores through the GPU layer (kernels/cuda/attention_cuda.h).
//
// One CTA = 64 query rows of one (batch, head) = 4 warps x 16 rows. Key tiles of 64 keys stream
// through shared memory with cp.async double buffering (the next tile's copy is in flight while
// this one is used). Per tile and warp: S = Q Kᵀ on mma.sync m16n8k16 (Q fragments by ldmatrix.x4,
// K fragments by ldmatrix.x4 from the row-major [key][d] tile, which is Kᵀ column-major), the
// online softmax in registers (each row lives in the 4 lanes of a quad: max by two xor shuffles,
// the row sum kept per lane and reduced once at the end), then O += P V with P converted from the
// S accumulators to A fragments in registers and V fragments by ldmatrix.x4.trans.
//
// Masking: positions are global (q_pos, k_pos), document ids per sample, an optional window
// (AttnMask, attention_tiles.cuh). From the position and id ranges of the CTA's queries and of a
// key tile: a tile with no visible pair is skipped (never loaded), a tile whose every pair is
// visible and that lies inside s_k runs unmasked; only tiles that straddle the diagonal, a
// document boundary, a window edge or the end of the keys evaluate the mask per element.
//
// Budgets (per CTA, 128 threads): dynamic shared memory 46,080 B (d = 64) / 87,040 B (d = 128);
// no static shared memory. Registers per thread: O accumulators d/2 fp32 (32 / 64), S 32 fp32,
// fragments 8-16; ptxas reports no spills (scripts/check-gpu-static, sm_80 and sm_90a).
// On an H100 (228 KiB smem/SM) that is 4 CTAs per SM at d = 64 and 2 at d = 128.
#include <cmath>
#include <type_traits>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_tiles.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {

constexpr int kBM = kAttnFwdRows, kBN = kAttnFwdKeys, kThreads = kAttnFwdThreads;

}  // namespace

// static-check: attention_fwd_kernel smem=0 threads=128 hmma
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_fwd_kernel(FlashParams p, const T* Q, const T* K, const T* V,
                                                                 T* O, float* L) {
  constexpr int kLd = D + 8;  // padded shared row (elements): 16-byte aligned, rows in different banks
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  T* Qs = gpu::dynamic_smem<T>();  // [kBM][kLd]
  T* Ks = Qs + kBM * kLd;          // [2][kBN][kLd]
  T* Vs = Ks + 2 * kBN * kLd;      // [2][kBN][kLd]
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const int q0 = blockIdx.x * kBM, hh = blockIdx.y, bi = blockIdx.z, kvh = hh / p.group;
  const int64_t q_stride = static_cast<int64_t>(p.h) * D, kv_stride = static_cast<int64_t>(p.h_kv) * D;
  const T* Qb = Q + static_cast<int64_t>(bi) * p.s_q * q_stride + hh * D;
  T* Ob = O + static_cast<int64_t>(bi) * p.s_q * q_stride + hh * D;
  const T* Kb = K + static_cast<int64_t>(bi) * p.s_k * kv_stride + kvh * D;
  const T* Vb = V + static_cast<int64_t>(bi) * p.s_k * kv_stride + kvh * D;
  const int q_rows = min(kBM, p.s_q - q0);
  const int n_tiles = (p.s_k + kBN - 1) / kBN;
  const AttnMask mk = p.mask.sample(bi, p.s_q, p.s_k);

  // The next key tile from `from` with a visible pair, and whether it needs the per-element
  // mask (also at the end of the keys). Every thread computes the same answer.
  const TileRange qr = mk.q_range(q0, q_rows);
  auto next_tile = [&](int from, bool& masked) {
    for (int kt = from; kt < n_tiles; ++kt) {
      const int k0 = kt * kBN, rows = min(kBN, p.s_k - k0);
      const TileKind kind = mk.classify(qr, mk.k_range(k0, rows));
      if (kind == TileKind::kSkip) continue;
      masked = kind == TileKind::kMasked || rows < kBN;
      return kt;
    }
    return n_tiles;
  };

  // This thread's two rows (r0, r0 + 8 of the warp's 16), their positions and document ids.
  const int r0 = warp * 16 + lane / 4;
  const bool row_ok[2] = {r0 < q_rows, r0 + 8 < q_rows};
  const int row_pos[2] = {row_ok[0] ? mk.qpos(q0 + r0) : 0, row_ok[1] ? mk.qpos(q0 + r0 + 8) : 0};
  const int row_doc[2] = {row_ok[0] ? mk.qdoc(q0 + r0) : 0, row_ok[1] ? mk.qdoc(q0 + r0 + 8) : 0};

  float acc[D / 8][4];
  for (int n = 0; n < D / 8; ++n)
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  bool masked_cur = false, masked_next = false;
  int kt = next_tile(0, masked_cur);
  auto load_kv = [&](int stage, int tile) {
    const int k0 = tile * kBN;
    for (int c = t; c < kBN * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = k0 + r < p.s_k;
      const int64_t off = ok ? (k0 + r) * kv_stride + col : 0;
      gpu::cp_async<16>(Ks + (stage * kBN + r) * kLd + col, Kb + off, ok ? 16 : 0);
      gpu::cp_async<16>(Vs + (stage * kBN + r) * kLd + col, Vb + off, ok ? 16 : 0);
    }
  };
  if (kt < n_tiles) {
    for (int c = t; c < kBM * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const bool ok = r < q_rows;
      gpu::cp_async<16>(Qs + r * kLd + col, ok ? Qb + (q0 + r) * q_stride + col : Qb, ok ? 16 : 0);
    }
    load_kv(0, kt);
    gpu::cp_async_commit();
  }
  for (int stage = 0; kt < n_tiles; stage ^= 1) {
    const int kt_next = next_tile(kt + 1, masked_next);
    if (kt_next < n_tiles) {
      load_kv(stage ^ 1, kt_next);  // streams in while this tile is used
      gpu::cp_async_commit();
      gpu::cp_async_wait<1>();
    } else {
      gpu::cp_async_wait<0>();
    }
    __syncthreads();
    const T* ks = Ks + stage * kBN * kLd;
    const T* vs = Vs + stage * kBN * kLd;

    // S = Q Kᵀ: 16 rows x 64 keys per warp = 8 n-tiles of 8 keys.
    float s[kBN / 8][4];
    for (int n = 0; n < kBN / 8; ++n)
      for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];
      gpu::ldmatrix_x4(a, Qs + (warp * 16 + lane % 16) * kLd + kk * 16 + (lane / 16) * 8);
      for (int np = 0; np < kBN / 16; ++np) {
        // Matrices: (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7), (keys 8-15, d 8-15).
        uint32_t r[4];
        gpu::ldmatrix_x4(r, ks + (np * 16 + lane % 8 + (lane / 16) * 8) * kLd + kk * 16 + ((lane / 8) & 1) * 8);
        const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
        mma<T>(s[2 * np], a, b0);
        mma<T>(s[2 * np + 1], a, b1);
      }
    }
    if (masked_cur) {
      const int k0 = kt * kBN;
      for (int n = 0; n < kBN / 8; ++n)
        for (int e = 0; e < 2; ++e) {
          const int j = k0 + n * 8 + 2 * (lane % 4) + e;
          const bool in = j < p.s_k;
          const int kp = in ? mk.kpos(j) : 0, kd = in ? mk.kdoc(j) : 0;
          for (int half = 0; half < 2; ++half)
            if (!in || !mk.visible(row_pos[half], row_doc[half], kp, kd)) s[n][2 * half + e] = -INFINITY;
        }
    }

    // Online softmax, base 2, per row half (elements 0,1: row r0; 2,3: row r0 + 8).
    for (int half = 0; half < 2; ++half) {
      float mx = m[half];
      for (int n = 0; n < kBN / 8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * half], s[n][2 * half + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // A row that has seen no key yet keeps m = -inf; shift by 0 then (every p is 0).
      const float shift = mx == -INFINITY ? 0.0f : mx * p.scale_log2;
      const float alpha = exp2f(m[half] * p.scale_log2 - shift);  // 0 when m was -inf
      m[half] = mx;
      float sum = 0.0f;
      for (int n = 0; n < kBN / 8; ++n)
        for (int e = 0; e < 2; ++e) {
          const float pe = exp2f(s[n][2 * half + e] * p.scale_log2 - shift);
          s[n][2 * half + e] = pe;
          sum += pe;
        }
      l[half] = l[half] * alpha + sum;
      for (int n = 0; n < D / 8; ++n) {
        acc[n][2 * half] *= alpha;
        acc[n][2 * half + 1] *= alpha;
      }
    }

    // O += P V: P's accumulators become A fragments (keys 16j..16j+15 = n-tiles 2j, 2j+1).
    for (int j = 0; j < kBN / 16; ++j) {
      uint32_t a[4];
      a_fragment_from_acc<T>(a, s[2 * j], s[2 * j + 1]);
      for (int np = 0; np < D / 16; ++np)  // V rows = keys 16j.., columns = d 16np..
        mma_acc_kn_tile<T>(acc[2 * np], acc[2 * np + 1], a, vs + j * 16 * kLd + np * 16, kLd, lane);
    }
    __syncthreads();  // the next iteration's copy overwrites this stage
    kt = kt_next;
    masked_cur = masked_next;
  }

  // Epilogue: reduce the row sums over the quad, normalize, store out and lse.
  for (int half = 0; half < 2; ++half) {
    float sum = l[half];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int r = r0 + 8 * half;
    if (!row_ok[half]) continue;
    T* orow = Ob + (q0 + r) * q_stride;
    for (int n = 0; n < D / 8; ++n) {
      const uint32_t packed = pack_float2(acc[n][2 * half] * inv, acc[n][2 * half + 1] * inv, static_cast<T*>(nullptr));
      *reinterpret_cast<uint32_t*>(orow + n * 8 + 2 * (lane % 4)) = packed;
    }
    if (L != nullptr && lane % 4 == 0)
      L[(static_cast<int64_t>(bi) * p.h + hh) * p.s_q + q0 + r] = sum > 0.0f ? m[half] * p.scale + logf(sum) : -INFINITY;
  }
}

template <typename T>
gpu::Status attention_forward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, T* out, float* lse,
                                   gpu::Stream stream) {
  const FlashParams p = attn_flash_params(a, "attention_forward_cuda");
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  RT_CHECK(aligned(q) && aligned(k) && aligned(v) && aligned(out),
           "attention_forward_cuda: q, k, v and out must be 16-byte aligned");
  if (a.s_q == 0) return gpu::Status::kSuccess;
  const dim3 grid((a.s_q + kBM - 1) / kBM, a.h, a.b);
  const int smem = attention_fwd_smem_bytes(a.d);
  auto run = [&](auto kernel) {
    gpu::Status s = gpu::func_set_max_dynamic_smem(kernel, smem);
    if (s != gpu::Status::kSuccess) return s;
    return gpu::launch(kernel, grid, kThreads, smem, stream, p, q, k, v, out, lse);
  };
  return a.d == 64 ? run(attention_fwd_kernel<T, 64>) : run(attention_fwd_kernel<T, 128>);
}

template gpu::Status attention_forward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*,
                                                           const __nv_bfloat16*, const __nv_bfloat16*,
                                                           __nv_bfloat16*, float*, gpu::Stream);
template gpu::Status attention_forward_cuda<__half>(const AttentionArgs&, const __half*, const __half*, const __half*,
                                                    __half*, float*, gpu::Stream);

}  // namespace ringtrain::cuda
