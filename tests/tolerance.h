// The one tolerance table: a value passes when |got - ref| <= atol + rtol * |ref|.
// Tight enough that a missing 1/sqrt(d), a wrong mask or an off-by-one position fails.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>


namespace ringtrain::test {

struct Tolerance {
  double atol;
  double rtol;
};

// fp32 kernels against a double reference (O(1) inputs, reductions of up to ~10^4 terms).
inline constexpr Tolerance kF32{1e-5, 1e-5};
// fp32 results of two different fp32 computations (different summation order / layout).
inline constexpr Tolerance kF32Layout{1e-6, 1e-5};
// Finite-difference gradient checks in double (central differences, h = 1e-6).
inline constexpr Tolerance kFiniteDiff{1e-6, 1e-5};
// bf16 inputs, fp32 accumulation (8 bits of mantissa: relative 2^-8 per rounding).
inline constexpr Tolerance kBF16{2e-2, 2e-2};
// fp16 inputs, fp32 accumulation (11 bits of mantissa).
inline constexpr Tolerance kF16{3e-3, 3e-3};

// The 16-bit flash attention (out, dQ, dK, dV) against the double reference on the same rounded
// inputs: per element within kRoundingSigmas standard deviations of the rounding model
// (attention_rounding_sigma in kernels/attention_reference.h, derived in docs/GPU-EMULATION.md
// "Error of the 16-bit flash attention") plus kF32 for the fp32 arithmetic around the roundings.
// lse and delta are fp32 computations from the rounded inputs: kF32. Unit roundoffs 2^-p of the
// formats (p = 8 bits of significand for bf16, 11 for fp16). Six standard deviations: a normal
// error passes with probability 1 - 2e-9 per element; the largest measured, over 40 seeds of
// 1.3 million elements per quantity, was 5.6 (docs/GPU-EMULATION.md).
inline constexpr double kBf16UnitRoundoff = 0x1p-8;
inline constexpr double kF16UnitRoundoff = 0x1p-11;
inline constexpr double kRoundingSigmas = 6.0;

// Whole tensors after AdamW steps, compared by norm: ||got - ref|| <= rtol * ||ref||. Adam's
// update is about lr * g / (|g| + eps) per element, so an element whose gradient is a
// near-cancelling sum (|g| ~ 1e-9) moves by a sign-sensitive amount whatever the layout's
// summation order; per element such weights differ by up to ~1e-4 relative after three steps
// while the tensor as a whole agrees to ~1e-7. A wrong gradient of any one row moves the norm
// far beyond this bound.
inline constexpr double kAdamWeightsNormRtol = 1e-5;
// The exception to that: the few elements whose gradient is such a near-cancelling sum move
// by a sign-sensitive amount of up to about lr per step, and in a small tensor one of them alone
// can exceed the norm bound (measured: ZeRO at cp 4, one element of an 11k-element MLP weight
// 2.2e-5 apart while every other element agreed to 1e-7). compare_adam_weights leaves out the
// kAdamSignSensitive largest differences from the norm and holds each of them to `reach` (lr x
// steps, the farthest Adam can move an element); a wrong gradient of any row or column still
// moves the norm of the rest far beyond kAdamWeightsNormRtol.
inline constexpr int kAdamSignSensitive = 2;

// Returns "" when every element passes, else a message naming the first failing index.
template <typename A, typename B>
std::string compare(const A* got, const B* ref, int64_t n, Tolerance tol, const char* what = "") {
  int64_t bad = 0, first = -1;
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    const double err = std::fabs(g - r);
    const bool ok = (std::isnan(g) == std::isnan(r)) &&
                    (std::isnan(r) || (std::isinf(r) ? g == r : err <= tol.atol + tol.rtol * std::fabs(r)));
    if (!ok) {
      if (first < 0) first = i;
      ++bad;
    }
    if (std::isfinite(err)) worst = std::fmax(worst, err);
  }
  if (bad == 0) return "";
  std::ostringstream os;
  os << what << ": " << bad << " of " << n << " elements outside atol " << tol.atol << " rtol "
     << tol.rtol << "; first at " << first << " got " << static_cast<double>(got[first])
     << " ref " << static_cast<double>(ref[first]) << "; max abs err " << worst;
  return os.str();
}

// err / sigma over the elements whose sigma is above the fp32 floor: the root mean square is 1
// when the model describes the errors, below 1 when it overstates them.
struct SigmaStats {
  double sum_sq = 0.0, max = 0.0;
  int64_t n = 0;
  double rms() const { return n ? std::sqrt(sum_sq / static_cast<double>(n)) : 0.0; }
};

// Returns "" when |got - ref| <= kRoundingSigmas * sigma + floor.atol + floor.rtol * |ref| for
// every element (NaN must match NaN), else a message naming the first failing index.
template <typename A>
std::string compare_sigma(const A* got, const double* ref, const double* sigma, int64_t n, Tolerance floor,
                          const char* what, SigmaStats* stats = nullptr) {
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), r = ref[i], err = std::fabs(g - r);
    const bool ok = (std::isnan(g) == std::isnan(r)) &&
                    (std::isnan(r) || err <= kRoundingSigmas * sigma[i] + floor.atol + floor.rtol * std::fabs(r));
    if (!ok && first < 0) first = i;
    bad += ok ? 0 : 1;
    if (stats && sigma[i] > floor.atol && std::isfinite(err)) {
      stats->sum_sq += (err / sigma[i]) * (err / sigma[i]);
      stats->max = std::fmax(stats->max, err / sigma[i]);
      ++stats->n;
    }
  }
  if (bad == 0) return "";
  std::ostringstream os;
  os << what << ": " << bad << " of " << n << " elements outside " << kRoundingSigmas << " sigma + atol "
     << floor.atol << " rtol " << floor.rtol << "; first at " << first << " got " << static_cast<double>(got[first])
     << " ref " << ref[first] << " sigma " << sigma[first];
  return os.str();
}

template <typename A, typename B>
std::string compare_adam_weights(const A* got, const B* ref, int64_t n, double reach, const char* what = "") {
  std::vector<double> d(static_cast<size_t>(n));
  double norm = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    d[static_cast<size_t>(i)] = std::fabs(static_cast<double>(got[i]) - static_cast<double>(ref[i]));
    norm += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
  }
  const size_t k = std::min<size_t>(static_cast<size_t>(kAdamSignSensitive), d.size());
  std::partial_sort(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(k), d.end(), std::greater<double>());
  std::ostringstream os;
  for (size_t i = 0; i < k; ++i)
    if (!(d[i] <= reach)) {
      os << what << ": an element " << d[i] << " apart, beyond Adam's reach " << reach;
      return os.str();
    }
  double diff = 0.0;
  for (size_t i = k; i < d.size(); ++i) diff += d[i] * d[i];
  diff = std::sqrt(diff);
  norm = std::sqrt(norm);
  if (diff <= kAdamWeightsNormRtol * norm) return "";
  os << what << ": ||got - ref|| without its " << k << " largest = " << diff << " > " << kAdamWeightsNormRtol
     << " * ||ref|| = " << kAdamWeightsNormRtol * norm;
  return os.str();
}

template <typename A, typename B>
std::string compare_norm(const A* got, const B* ref, int64_t n, double rtol, const char* what = "") {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(ref[i]);
    diff += d * d;
    norm += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
  }
  diff = std::sqrt(diff);
  norm = std::sqrt(norm);
  if (diff <= rtol * norm) return "";
  std::ostringstream os;
  os << what << ": ||got - ref|| = " << diff << " > " << rtol << " * ||ref|| = " << rtol * norm;
  return os.str();
}

}  // namespace ringtrain::test
