// Naive attention in double precision, the test reference: materializes the score matrix.
// Same layouts and position/mask rules as kernels/attention.h.
#pragma once

#include <vector>

#include "kernels/attention.h"

namespace ringtrain {

void attention_reference_forward(const AttentionArgs& a, const double* q, const double* k,
                                 const double* v, double* out, double* lse);
// Gradients (overwritten, not accumulated) of sum(out * dout).
void attention_reference_backward(const AttentionArgs& a, const double* q, const double* k,
                                  const double* v, const double* dout, double* dq, double* dk,
                                  double* dv);

}  // namespace ringtrain
