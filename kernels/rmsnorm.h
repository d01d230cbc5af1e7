// RMSNorm as in Llama: y = x / sqrt(mean(x^2) + eps) * w, statistics in fp32.
#pragma once

namespace ringtrain {

struct RmsNormArgs {
  int rows = 0;  // tokens
  int dim = 0;
  float eps = 1e-5f;
};

// x[rows, dim], w[dim] -> y[rows, dim], rstd[rows] (saved for backward)
void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd);
// dx[rows, dim] = ..., dw[dim] += ...
void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                      const float* rstd, float* dx, float* dw);

}  // namespace ringtrain
