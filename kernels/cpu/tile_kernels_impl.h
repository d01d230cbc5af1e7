// The tile micro-kernels as one template over a vector type, instantiated by each ISA's file
// (kernels/cpu/tile_kernels_avx512.cpp, tile_kernels_avx2.cpp) after it switched its target
// on: include it there only, after the `#pragma GCC target`, so every function here is built
// for that ISA and for no other file. V provides: T (the register type), W (floats per
// register), kRegs (architectural vector registers), kNtNV (registers per row of a score-tile
// column block), kNdNV (the most registers per row of a d-wide block), zero(), load(p),
// store(p, x), set1(f), fmadd(a, b, c) = a b + c, mul(a, b), and transpose(src, lds, dst, ldd)
// of one W x W block.
#pragma once

#include "kernels/cpu/tile_kernels.h"

namespace ringtrain::cpu::tile_impl {

// C[R rows, NV W columns] (+)= alpha A B: R rows x NV registers of C stay in registers over the
// whole k loop, A broadcast, B's row loaded. kAcc: add into C; else overwrite it.
template <class V, int NV, int R, bool kAcc>
inline void mk_rows(int kn, float alpha, const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb,
                    float* c, int64_t ldc) {
  typename V::T acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int k = 0; k < kn; ++k) {
    const float* bk = b + k * ldb;
    const float* ak = a + k * acs;
    typename V::T bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = V::load(bk + V::W * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const typename V::T ar = V::set1(ak[r * ars]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(ar, bv[v], acc[r][v]);
    }
  }
  const typename V::T al = V::set1(alpha);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* cp = c + r * ldc + V::W * v;
      if constexpr (kAcc)
        V::store(cp, V::fmadd(acc[r][v], al, V::load(cp)));
      else
        V::store(cp, V::mul(acc[r][v], al));
    }
}

// C[m, NV W] (+)= alpha A B, every row of C: R-row blocks, then the rows left over in blocks
// of 4, 2, 1. R: as many rows as leave registers for NV loads and a broadcast (3/4 of the
// register file for accumulators), at most 12.
template <class V, int NV, bool kAcc>
void mk_gemm(int m, int kn, float alpha, const float* a, int64_t ars, int64_t acs, const float* b, int64_t ldb,
             float* c, int64_t ldc) {
  constexpr int R = (V::kRegs * 3 / 4) / NV > 12 ? 12 : (V::kRegs * 3 / 4) / NV;
  static_assert(R >= 1, "too many registers per row");
  int r0 = 0;
  for (; r0 + R <= m; r0 += R) mk_rows<V, NV, R, kAcc>(kn, alpha, a + r0 * ars, ars, acs, b, ldb, c + r0 * ldc, ldc);
  if (R > 4 && r0 + 4 <= m) {
    mk_rows<V, NV, (R > 4 ? 4 : 1), kAcc>(kn, alpha, a + r0 * ars, ars, acs, b, ldb, c + r0 * ldc, ldc);
    r0 += R > 4 ? 4 : 1;
  }
  if (R > 2 && r0 + 2 <= m) {
    mk_rows<V, NV, (R > 2 ? 2 : 1), kAcc>(kn, alpha, a + r0 * ars, ars, acs, b, ldb, c + r0 * ldc, ldc);
    r0 += R > 2 ? 2 : 1;
  }
  for (; r0 < m; ++r0) mk_rows<V, NV, 1, kAcc>(kn, alpha, a + r0 * ars, ars, acs, b, ldb, c + r0 * ldc, ldc);
}

// mk_gemm<V, nv, kAcc> for a run-time nv in [1, N].
template <class V, int N, bool kAcc>
void mk_gemm_nv(int nv, int m, int kn, float alpha, const float* a, int64_t ars, int64_t acs, const float* b,
                int64_t ldb, float* c, int64_t ldc) {
  if (nv == N) return mk_gemm<V, N, kAcc>(m, kn, alpha, a, ars, acs, b, ldb, c, ldc);
  if constexpr (N > 1) mk_gemm_nv<V, N - 1, kAcc>(nv, m, kn, alpha, a, ars, acs, b, ldb, c, ldc);
}

// TileKernels::gemm_nd: C's d columns in blocks of at most kNdNV registers.
template <class V>
void gemm_nd(int m, int d, int kn, float alpha, const float* a, int64_t ars, int64_t acs, const float* b,
             int64_t ldb, float* c, int64_t ldc) {
  if (kn <= 0) return;
  const int nv = d / V::W;
  for (int v0 = 0; v0 < nv; v0 += V::kNdNV) {
    const int block = nv - v0 < V::kNdNV ? nv - v0 : V::kNdNV;
    mk_gemm_nv<V, V::kNdNV, true>(block, m, kn, alpha, a, ars, acs, b + V::W * v0, ldb, c + V::W * v0, ldc);
  }
}

// TileKernels::gemm_nt: C's columns in blocks of kNtNV registers, the last block rounded up to
// whole registers.
template <class V>
void gemm_nt(int m, int n, int kn, float alpha, const float* a, int64_t lda, const float* bt, int64_t ldbt,
             float* c, int64_t ldc) {
  const int nv = (n + V::W - 1) / V::W;
  for (int v0 = 0; v0 < nv; v0 += V::kNtNV) {
    const int block = nv - v0 < V::kNtNV ? nv - v0 : V::kNtNV;
    mk_gemm_nv<V, V::kNtNV, false>(block, m, kn, alpha, a, lda, 1, bt + V::W * v0, ldbt, c + V::W * v0, ldc);
  }
}

// TileKernels::transpose_keys: W x W blocks where d allows, element by element otherwise.
template <class V>
void transpose_keys(const float* src, int64_t ld, int nk, int d, float* bt, int64_t ldbt) {
  int j = 0;
  if (d % V::W == 0)
    for (; j + V::W <= nk; j += V::W)
      for (int c = 0; c < d; c += V::W) V::transpose(src + j * ld + c, ld, bt + c * ldbt + j, ldbt);
  for (; j < nk; ++j)
    for (int c = 0; c < d; ++c) bt[c * ldbt + j] = src[j * ld + c];
  for (int c = 0; c < d; ++c)
    for (int64_t x = nk; x < ldbt; ++x) bt[c * ldbt + x] = 0.0f;
}

template <class V>
const TileKernels* kernels() {
  static const TileKernels k{V::W, &gemm_nd<V>, &gemm_nt<V>, &transpose_keys<V>};
  return &k;
}

}  // namespace ringtrain::cpu::tile_impl
