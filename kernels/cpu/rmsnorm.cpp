// RMSNorm exactly as Hugging Face's LlamaRMSNorm in fp32:
//   var = mean(x^2); x_hat = x * rsqrt(var + eps); y = w * x_hat
// The mean is accumulated in double (then rounded once), which is at least as accurate as
// torch's fp32 reduction, so the two agree to an ulp or so.
#include "kernels/cpu/cpu_clones.h"
#include "kernels/cpu/dsum.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/rmsnorm.h"

#include <cmath>
#include <cstdint>

namespace ringtrain {

namespace {

// Rows [r0, r1) of the forward: each row on its own, so the pool's cut never changes a result.
RT_CPU_CLONES
void forward_rows(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd, int64_t r0,
                  int64_t r1) {
  const int64_t dim = a.dim;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const double ss = cpu::dsum(xr, xr, nullptr, dim);
    const float var = static_cast<float>(ss / static_cast<double>(dim));
    const float rs = 1.0f / std::sqrt(var + a.eps);
    if (rstd != nullptr) rstd[r] = rs;
    for (int64_t j = 0; j < dim; ++j) yr[j] = w[j] * (xr[j] * rs);
  }
}

// Below this many elements per thread, waking the pool costs more than it saves.
constexpr int64_t kMinPart = int64_t{1} << 15;

}  // namespace

void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd) {
  const int64_t min_rows = a.dim > 0 ? (kMinPart + a.dim - 1) / a.dim : 1;
  cpu::parallel_ranges(attention_cpu_threads(), a.rows, min_rows,
                       [&](int64_t r0, int64_t r1) { forward_rows(a, x, w, y, rstd, r0, r1); });
}

// One thread: dw sums over the rows, in row order.
RT_CPU_CLONES
void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                      const float* rstd, float* dx, float* dw) {
  const int64_t dim = a.dim;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    const float rs = rstd[r];
    const double dot = cpu::dsum(w, dyr, xr, dim);
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
