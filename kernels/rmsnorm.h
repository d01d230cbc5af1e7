// RMSNorm as in Llama: y = x / sqrt(mean(x^2) + eps) * w, statistics in fp32.
#pragma once

namespace ringtrain {

struct RmsNormArgs {
  int rows = 0;  // tokens
  int dim = 0;
  float eps = 1e-5f;
};

}  // namespace ringtrain
