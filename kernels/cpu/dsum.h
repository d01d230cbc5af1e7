// Sums of fp32 products accumulated in double, in 8 independent lanes: one serial chain of double
// additions waits out the adder's latency on every element (about 4 cycles each); 8 chains are
// one vector register of doubles under RT_CPU_CLONES (cpu_clones.h). Each product is exact in
// double, so only the order of the additions changes, far below fp32's rounding.
#pragma once

#include <cstdint>

namespace ringtrain::cpu {

// sum of a[i] b[i] c[i] (c null: a[i] b[i]) over [0, n), the products in double.
inline double dsum(const float* a, const float* b, const float* c, int64_t n) {
  double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  if (c == nullptr) {
    for (; i + 8 <= n; i += 8)
      for (int u = 0; u < 8; ++u) acc[u] += static_cast<double>(a[i + u]) * b[i + u];
  } else {
    for (; i + 8 <= n; i += 8)
      for (int u = 0; u < 8; ++u) acc[u] += static_cast<double>(a[i + u]) * b[i + u] * c[i + u];
  }
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += static_cast<double>(a[i]) * b[i] * (c ? static_cast<double>(c[i]) : 1.0);
  return s;
}

}  // namespace ringtrain::cpu
