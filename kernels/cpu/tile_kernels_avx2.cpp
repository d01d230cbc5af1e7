// The tile micro-kernels built for AVX2 + FMA (kernels/cpu/tile_kernels_impl.h), for x86 CPUs
// without AVX-512 (and forced with RINGTRAIN_CPU_ISA=avx2): only this file's functions carry the
// target, the rest of the build stays baseline x86-64.
#include "kernels/cpu/tile_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#include "kernels/cpu/tile_kernels_impl.h"

namespace ringtrain::cpu {
namespace {

struct Avx2 {
  using T = __m256;
  static constexpr int W = 8, kRegs = 16;
  // 16 registers: 6 rows x 2 registers of C, 2 loads and a broadcast (the classic 6 x 16 block),
  // for the score tiles and the d-wide products alike.
  static constexpr int kNtNV = 2, kNdNV = 2;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T x) { _mm256_storeu_ps(p, x); }
  static T set1(float f) { return _mm256_set1_ps(f); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }

  // 8 rows of 8 floats (row stride lds) -> 8 rows of 8 (row stride ldd), transposed.
  static void transpose(const float* src, int64_t lds, float* dst, int64_t ldd) {
    __m256 r[8], t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
      r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x20));
      _mm256_storeu_ps(dst + (4 + i) * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x31));
    }
  }
};

}  // namespace

const TileKernels* tile_kernels_avx2() { return tile_impl::kernels<Avx2>(); }

}  // namespace ringtrain::cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 with GNU intrinsics

namespace ringtrain::cpu {
const TileKernels* tile_kernels_avx2() { return nullptr; }
}  // namespace ringtrain::cpu

#endif
