// SwiGLU: h = silu(g) * u with silu(g) = g / (1 + exp(-g)) (torch's formula).
//
// The exp is the vectorizable polynomial of kernels/cpu/vexp.h (within an ulp or so of libm's
// expf, as torch's own vectorized exp is), not a libm call per element: the loops compile to
// AVX-512/AVX2 code picked at load time, which took SwiGLU from ~12% of a small model's step
// (two scalar expf calls per element) to a few percent.

#include "kernels/cpu/cpu_clones.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/vexp.h"

namespace ringtrain {
namespace {


// sigmoid(g) = 1 / (1 + exp(-g)); exp_approx saturates at -g > 88.3 (sigmoid ~ 5e-39
// instead of 0) and returns 0 below -87.3 (sigmoid = 1).
inline float sigmoid(float g) { return 1.0f / (1.0f + cpu::exp_approx(-g)); }

// Below this many elements per thread, waking the pool costs more than it saves.
constexpr int64_t kMinPart = int64_t{1} << 15;

RT_CPU_CLONES
void forward_range(const float* gate, const float* up, float* h, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) {
    const float g = gate[i];
    h[i] = (g * sigmoid(g)) * up[i];
  }
}

// d silu/dg = sig(g) (1 + g (1 - sig(g)))
RT_CPU_CLONES
void backward_range(const float* dh, const float* gate, const float* up, float* dgate, float* dup, int64_t lo,
                    int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) {
    const float g = gate[i];
    const float sig = sigmoid(g);
    const float silu = g * sig;
    const float d = dh[i];
    dgate[i] = d * up[i] * (sig * (1.0f + g * (1.0f - sig)));
    dup[i] = d * silu;
  }
}

}  // namespace

// Elementwise, so the pool's cut never changes a result.
void swiglu_forward(const float* gate, const float* up, float* h, int64_t n) {
  cpu::parallel_ranges(attention_cpu_threads(), n, kMinPart,
                       [&](int64_t lo, int64_t hi) { forward_range(gate, up, h, lo, hi); });
}

void swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                     int64_t n) {
  cpu::parallel_ranges(attention_cpu_threads(), n, kMinPart,
                       [&](int64_t lo, int64_t hi) { backward_range(dh, gate, up, dgate, dup, lo, hi); });
}

}  // namespace ringtrain
