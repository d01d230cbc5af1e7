// The conjugate communication of Megatron-style tensor parallelism, as two pairs of
// operations on token rows (Shoeybi et al. 2019; Korthikanti et al. 2022 for the sequence-
// parallel form). A column-parallel linear layer needs the whole input on every tp rank and a
// row-parallel one produces partial sums:
//
//                          forward                     backward
//   enter (before column)  identity | all-gather       all-reduce | reduce-scatter
//   leave (after row)      all-reduce | reduce-scatter identity | all-gather
//
// (left: plain TP, activations replicated over tp; right: sequence parallel, activations
// outside the linear layers sharded by token rows, rank j holding rows [j*N/tp, (j+1)*N/tp)).
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "src/core/communicator.h"

namespace ringtrain {

struct TpGroup {
  Communicator* comm = nullptr;  // the tp group (size 1: no tensor parallelism), on the backend's memory
  Backend* backend = nullptr;    // copies between the held and full buffers
  bool sequence_parallel = false;
  int size() const { return comm ? comm->size() : 1; }
  // Rows held outside the linear layers for N full rows.
  int64_t held_rows(int64_t n) const { return sequence_parallel ? n / size() : n; }
};

// x_held[held_rows, dim] -> x_full[n, dim] (may alias x_held when not sequence parallel).
void tp_enter_forward(const TpGroup& g, const float* x_held, float* x_full, int64_t n, int64_t dim);
// dx_full[n, dim] (partial sums, destroyed) -> dx_held[held_rows, dim] (summed over tp).
void tp_enter_backward(const TpGroup& g, float* dx_full, float* dx_held, int64_t n, int64_t dim);
// y_full[n, dim] partial sums (destroyed) -> y_held[held_rows, dim].
void tp_leave_forward(const TpGroup& g, float* y_full, float* y_held, int64_t n, int64_t dim);
// dy_held[held_rows, dim] -> dy_full[n, dim].
void tp_leave_backward(const TpGroup& g, const float* dy_held, float* dy_full, int64_t n, int64_t dim);

}  // namespace ringtrain
