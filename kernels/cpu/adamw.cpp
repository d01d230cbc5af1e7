// AdamW in torch.optim.AdamW's exact order of operations (single-tensor path), so a step
// agrees with torch to an ulp rather than merely to the algebra:
//   p *= 1 - lr*wd
//   m = m*b1 + (1-b1)*g;   v = v*b2 + (1-b2)*g*g
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps
//   p += -(lr / (1 - b1^t)) * (m / denom)
// The scalars are formed in double (torch forms them in Python floats) and rounded to fp32
// once, as torch does when it applies a Python scalar to an fp32 tensor.
#include "kernels/adamw.h"

#include <cmath>

#include "kernels/cpu/cpu_clones.h"
#include "kernels/cpu/dsum.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/thread_pool.h"
#include "src/core/error.h"

namespace ringtrain {

namespace {

struct AdamWConsts {
  float decay, b1, one_m_b1, b2, one_m_b2, step_size, bc2_sqrt, eps;
  bool decays;
};

// Elements [lo, hi): independent of each other, so the pool's cut never changes a result.
RT_CPU_CLONES
void adamw_range(const AdamWConsts& k, float* param, const float* grad, float* m, float* v, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) {
    const float g = grad[i];
    float p = param[i];
    if (k.decays) p = p * k.decay;
    const float mi = m[i] * k.b1 + k.one_m_b1 * g;
    const float vi = v[i] * k.b2 + k.one_m_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / k.bc2_sqrt + k.eps;
    param[i] = p + (-k.step_size) * (mi / denom);
  }
}

// Below this many elements per thread, waking the pool costs more than it saves.
constexpr int64_t kMinPart = int64_t{1} << 15;

}  // namespace

void adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v,
                int64_t n) {
  RT_CHECK(a.step >= 1, "adamw: step is 1-based, got ", a.step);
  const double lr = a.lr, b1 = a.beta1, b2 = a.beta2, wd = a.weight_decay;
  const double t = static_cast<double>(a.step);
  const double bc1 = 1.0 - std::pow(b1, t);
  const double bc2 = 1.0 - std::pow(b2, t);
  const AdamWConsts k{static_cast<float>(1.0 - lr * wd), static_cast<float>(b1), static_cast<float>(1.0 - b1),
                      static_cast<float>(b2), static_cast<float>(1.0 - b2), static_cast<float>(lr / bc1),
                      static_cast<float>(std::sqrt(bc2)), a.eps, wd != 0.0};
  cpu::parallel_ranges(attention_cpu_threads(), n, kMinPart,
                       [&](int64_t lo, int64_t hi) { adamw_range(k, param, grad, m, v, lo, hi); });
}

RT_CPU_CLONES
double sum_squares(const float* x, int64_t n) { return cpu::dsum(x, x, nullptr, n); }

void scale_inplace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace ringtrain
