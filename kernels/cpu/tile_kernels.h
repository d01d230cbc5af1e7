// The attention tiles' products on register-blocked micro-kernels, one build per ISA
// (kernels/cpu/tile_kernels_avx512.cpp, tile_kernels_avx2.cpp; the shared template in
// tile_kernels_impl.h), chosen at run time by kernels/cpu/cpu_isa.h. They read their operands in
// place: OpenBLAS packs both operands of every sgemm call, which at the tiles' sizes (128 x 128 x
// d) cost about a third of the attention kernel's time. Private to kernels/cpu.
#pragma once

#include <cstdint>

namespace ringtrain::cpu {

struct TileKernels {
  // Vector width in floats (16 AVX-512, 8 AVX2).
  int width;

  // C[m, d] += alpha op(A) B for the products whose B is d wide (O += P V, dV += P^T dO,
  // dQ += dS K, dK += dS^T Q): A(r, k) = a[r ars + k acs] (the score tile read transposed or
  // not), B's kn rows of d contiguous floats at row stride ldb. Only for d % width == 0
  // (supports_d).
  void (*gemm_nd)(int m, int d, int kn, float alpha, const float* a, int64_t ars, int64_t acs, const float* b,
                  int64_t ldb, float* c, int64_t ldc);

  // C[m, n] = alpha A B^T, a score tile (S = scale Q K^T, dP = dO V^T): A's rows read in place
  // (kn contiguous floats each, row stride lda), B^T given transposed (bt: kn rows of n keys,
  // row stride ldbt; transpose_keys). C's and bt's row strides must hold n rounded up to 16;
  // the columns past n get values nobody reads.
  void (*gemm_nt)(int m, int n, int kn, float alpha, const float* a, int64_t lda, const float* bt, int64_t ldbt,
                  float* c, int64_t ldc);

  // bt[c ldbt + j] = key j's component c for a tile's nk keys (row stride ld of the source),
  // zeros in columns nk .. ldbt - 1 (a column block starting inside the tile reads past its
  // last key).
  void (*transpose_keys)(const float* src, int64_t ld, int nk, int d, float* bt, int64_t ldbt);

  bool supports_d(int d) const { return d > 0 && d % width == 0; }
};

// The kernels of active_isa(); null for the generic path (the tile products are sgemm calls).
// Call it first on the main thread: a bad RINGTRAIN_CPU_ISA is an input error raised there.
const TileKernels* tile_kernels();

// Each ISA's kernels (null where this build has no such path, e.g. off x86-64).
const TileKernels* tile_kernels_avx512();
const TileKernels* tile_kernels_avx2();

}  // namespace ringtrain::cpu
