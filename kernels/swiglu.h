// SwiGLU: h = silu(gate) * up, silu(g) = g * sigmoid(g).
#pragma once

#include <cstdint>

namespace ringtrain {

void swiglu_forward(const float* gate, const float* up, float* h, int64_t n);
// dgate, dup from dh (all [n]).
void swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                     int64_t n);

}  // namespace ringtrain
