// Counter-based randomness: every random number is a pure function of (key, counter), so the
// value of weight element i or of sample j of step s never depends on how many ranks drew
// numbers before, or in which order. SplitMix64's finalizer as the mixing function.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace ringtrain {

inline uint64_t mix_bits(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t hash_combine(uint64_t a, uint64_t b) { return mix_bits(a ^ mix_bits(b)); }

inline uint64_t hash_string(std::string_view s) {  // FNV-1a, then mixed
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return mix_bits(h);
}

// Uniform in (0, 1): 53 random bits, never 0.
inline double uniform_at(uint64_t key, uint64_t counter) {
  return (static_cast<double>(hash_combine(key, counter) >> 11) + 0.5) * 0x1.0p-53;
}

// Standard normal (Box-Muller on two independent uniforms).
inline double normal_at(uint64_t key, uint64_t counter) {
  const double u1 = uniform_at(key, 2 * counter), u2 = uniform_at(key, 2 * counter + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace ringtrain
