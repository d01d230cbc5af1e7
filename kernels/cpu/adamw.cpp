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

#include "kernels/cpu/ops_cpu.h"
#include "src/core/error.h"

namespace ringtrain {

void adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v,
                int64_t n) {
  RT_CHECK(a.step >= 1, "adamw: step is 1-based, got ", a.step);
  const double lr = a.lr, b1 = a.beta1, b2 = a.beta2, wd = a.weight_decay;
  const double t = static_cast<double>(a.step);
  const float decay = static_cast<float>(1.0 - lr * wd);
  const float b1f = static_cast<float>(b1), one_m_b1 = static_cast<float>(1.0 - b1);
  const float b2f = static_cast<float>(b2), one_m_b2 = static_cast<float>(1.0 - b2);
  const double bc1 = 1.0 - std::pow(b1, t);
  const double bc2 = 1.0 - std::pow(b2, t);
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float eps = a.eps;
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    float p = param[i];
    if (wd != 0.0) p = p * decay;
    const float mi = m[i] * b1f + one_m_b1 * g;
    const float vi = v[i] * b2f + one_m_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    param[i] = p + (-step_size) * (mi / denom);
  }
}

double sum_squares(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

void scale_inplace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace ringtrain
