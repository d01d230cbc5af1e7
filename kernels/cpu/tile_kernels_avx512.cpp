// The tile micro-kernels built for AVX-512F + FMA (kernels/cpu/tile_kernels_impl.h): only this
// file's functions carry the target, so the rest of the build stays baseline x86-64 and runs on
// any CPU; kernels/cpu/cpu_isa.h calls into here only when the CPU has AVX-512F.
#include "kernels/cpu/tile_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#endif

#include "kernels/cpu/tile_kernels_impl.h"

namespace ringtrain::cpu {
namespace {

// (GCC 12's shuffle intrinsics start from _mm512_undefined_ps, which -Wuninitialized reports.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
struct Avx512 {
  using T = __m512;
  static constexpr int W = 16, kRegs = 32;
  // Score tiles: 4 registers (64 keys) x 6 rows. d-wide products: up to d = 128 in one block.
  static constexpr int kNtNV = 4, kNdNV = 8;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T x) { _mm512_storeu_ps(p, x); }
  static T set1(float f) { return _mm512_set1_ps(f); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }

  // 16 rows of 16 floats (row stride lds) -> 16 rows of 16 (row stride ldd), transposed.
  static void transpose(const float* src, int64_t lds, float* dst, int64_t ldd) {
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 16; h += 8)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
        t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
      }
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
      r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
  }
};
#pragma GCC diagnostic pop

}  // namespace

const TileKernels* tile_kernels_avx512() { return tile_impl::kernels<Avx512>(); }

}  // namespace ringtrain::cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 with GNU intrinsics

namespace ringtrain::cpu {
const TileKernels* tile_kernels_avx512() { return nullptr; }
}  // namespace ringtrain::cpu

#endif
