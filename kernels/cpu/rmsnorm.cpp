// RMSNorm exactly as Hugging Face's LlamaRMSNorm in fp32:
//   var = mean(x^2); x_hat = x * rsqrt(var + eps); y = w * x_hat
// The mean is accumulated in double (then rounded once), which is at least as accurate as
// torch's fp32 reduction, so the two agree to an ulp or so.
#include "kernels/cpu/ops_cpu.h"
#include "kernels/rmsnorm.h"

#include <cmath>
#include <cstdint>

namespace ringtrain {

void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd) {
  const int64_t dim = a.dim;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double ss = 0.0;
    for (int64_t j = 0; j < dim; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const float var = static_cast<float>(ss / static_cast<double>(dim));
    const float rs = 1.0f / std::sqrt(var + a.eps);
    if (rstd != nullptr) rstd[r] = rs;
    for (int64_t j = 0; j < dim; ++j) yr[j] = w[j] * (xr[j] * rs);
  }
}

// With x_hat = x r, r = (mean(x^2) + eps)^(-1/2), y = w x_hat:
//   dx_j = r (w_j dy_j) - x_j r^3 / D * sum_k w_k dy_k x_k,   dw_j += dy_j x_hat_j
void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                      const float* rstd, float* dx, float* dw) {
  const int64_t dim = a.dim;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    const float rs = rstd[r];
    double dot = 0.0;
    for (int64_t j = 0; j < dim; ++j) dot += static_cast<double>(w[j]) * dyr[j] * xr[j];
    const float c = static_cast<float>(dot * rs * rs * rs / static_cast<double>(dim));
    if (dx != nullptr) {
      float* dxr = dx + r * dim;
      for (int64_t j = 0; j < dim; ++j) dxr[j] = rs * (w[j] * dyr[j]) - xr[j] * c;
    }
    if (dw != nullptr)
      for (int64_t j = 0; j < dim; ++j) dw[j] += dyr[j] * (xr[j] * rs);
  }
}

}  // namespace ringtrain
