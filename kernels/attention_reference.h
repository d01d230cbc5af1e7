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

// The standard deviations of the errors of the 16-bit flash kernels (kernels/cuda/attention_fwd.cu,
// attention_bwd.cu) against the functions above, per element, on the same rounded inputs: the
// model of docs/GPU-EMULATION.md ("Error of the 16-bit flash attention"). The kernels round four
// things to the 16-bit format of unit roundoff u, everything else is fp32: P before P V (forward)
// and before Pᵀ dO (dV), dS before dS K (dQ) and dSᵀ Q (dK), and out, which the backward reads
// back for delta = rowsum(dO ∘ out). Each rounding is an independent relative error of mean 0 and
// variance kRoundingVariance u² (mantissas spread over a binade); fp32 errors are left out (the
// tests add the fp32 tolerance). Pass null for the outputs not wanted (dout may then be null).
// `delta_term` false leaves out the gradients' share of out's error (through delta): for a
// caller that perturbs out itself and lets its own backward carry that error through delta.
inline constexpr double kRoundingVariance = 1.0 / 6.0;
void attention_rounding_sigma(const AttentionArgs& a, double u, const double* q, const double* k,
                              const double* v, const double* dout, double* sigma_out,
                              double* sigma_dq, double* sigma_dk, double* sigma_dv, bool delta_term = true);

}  // namespace ringtrain
