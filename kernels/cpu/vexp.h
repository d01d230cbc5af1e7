// Vectorizable fp32 exp for the attention kernels (private to kernels/cpu).
//
// exp(x) = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (Cody-Waite split
// of ln 2 so r is exact to fp32), e^r by its degree-7 Taylor polynomial (truncation < 6e-9
// relative), 2^n assembled in the exponent bits. Straight-line code with selects only, so GCC
// turns the loops below into SIMD code; measured max relative error 1.0e-7 (7.7e-8 where the
// compiler fuses multiply-adds), i.e. under 2 ulp. Inputs below -87.3
// (results below the smallest normal float, including -inf from the causal mask) give exactly 0.
#pragma once

#include <bit>
#include <cstdint>

namespace ringtrain::cpu {

// cond ? a : b as bit operations. GCC (with the default -ftrapping-math) keeps a float ?: that
// guards arithmetic as a branch, which stops vectorization; an integer select it vectorizes.
inline float select(bool cond, float a, float b) {
  const int32_t m = cond ? -1 : 0;
  return std::bit_cast<float>((std::bit_cast<int32_t>(a) & m) | (std::bit_cast<int32_t>(b) & ~m));
}

inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kLo = -87.3f, kHi = 88.3f;
  float xc = select(x < kLo, kLo, x);
  xc = select(xc > kHi, kHi, xc);
  // t's low mantissa bits hold n = round(xc log2 e) (offset by kRound's bit pattern)
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  float r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t two_n = (std::bit_cast<int32_t>(t) - 0x4B400000 + 127) << 23;
  return select(x < kLo, 0.0f, p * std::bit_cast<float>(two_n));
}

// x[i] <- exp(x[i] - shift)
inline void exp_shift_inplace(float* x, int n, float shift) {
  for (int i = 0; i < n; ++i) x[i] = exp_approx(x[i] - shift);
}

// max(init, x[0..n)), 16 lanes at a time in a GCC vector (a plain running max is a serial
// chain GCC does not vectorize without -ffast-math, and it does not turn 16 scalar lanes of
// compare-and-select into one either). The vector type is lowered to what the target has:
// one zmm register in the AVX-512 clones, SSE pairs in baseline x86-64.
inline float max_floats(const float* x, int n, float init) {
  typedef float v16 __attribute__((vector_size(64)));
  v16 acc = {init, init, init, init, init, init, init, init,
             init, init, init, init, init, init, init, init};
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    v16 v;
    __builtin_memcpy(&v, x + i, sizeof v);
    acc = v > acc ? v : acc;
  }
  float m = init;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < 16; ++j) m = acc[j] > m ? acc[j] : m;
  return m;
}

// x[i] <- exp(x[i] - shift), returning the sum of the new x: the softmax numerator and its
// denominator in one pass over the row (16 partial sums).
inline float exp_shift_sum(float* x, int n, float shift) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) {
      const float e = exp_approx(x[i + j] - shift);
      x[i + j] = e;
      acc[j] += e;
    }
  float s = 0.0f;
  for (; i < n; ++i) {
    const float e = exp_approx(x[i] - shift);
    x[i] = e;
    s += e;
  }
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

}  // namespace ringtrain::cpu
