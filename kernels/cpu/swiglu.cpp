// SwiGLU: h = silu(g) * u with silu(g) = g / (1 + exp(-g)) (torch's formula).
#include "kernels/swiglu.h"

#include <cmath>

namespace ringtrain {

void swiglu_forward(const float* gate, const float* up, float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    h[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

// d silu/dg = sig(g) (1 + g (1 - sig(g)))
void swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                     int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + std::exp(-g));
    const float silu = g * sig;
    const float d = dh[i];
    dgate[i] = d * up[i] * (sig * (1.0f + g * (1.0f - sig)));
    dup[i] = d * silu;
  }
}

}  // namespace ringtrain
