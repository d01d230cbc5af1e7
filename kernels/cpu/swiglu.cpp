// SwiGLU: h = silu(g) * u with silu(g) = g / (1 + exp(-g)) (torch's formula).
//
// The exp is the vectorizable polynomial of kernels/cpu/vexp.h (within an ulp or so of libm's
// expf, as torch's own vectorized exp is), not a libm call per element: the loops compile to
// AVX-512/AVX2 code picked at load time, which took SwiGLU from ~12% of a small model's step
// (two scalar expf calls per element) to a few percent.

#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/vexp.h"

namespace ringtrain {
namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define RT_SWIGLU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RT_SWIGLU_CLONES
#endif

// sigmoid(g) = 1 / (1 + exp(-g)); exp_approx saturates at -g > 88.3 (sigmoid ~ 5e-39
// instead of 0) and returns 0 below -87.3 (sigmoid = 1).
inline float sigmoid(float g) { return 1.0f / (1.0f + cpu::exp_approx(-g)); }

}  // namespace

RT_SWIGLU_CLONES
void swiglu_forward(const float* gate, const float* up, float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    h[i] = (g * sigmoid(g)) * up[i];
  }
}

// d silu/dg = sig(g) (1 + g (1 - sig(g)))
RT_SWIGLU_CLONES
void swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                     int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float sig = sigmoid(g);
    const float silu = g * sig;
    const float d = dh[i];
    dgate[i] = d * up[i] * (sig * (1.0f + g * (1.0f - sig)));
    dup[i] = d * silu;
  }
}

}  // namespace ringtrain
