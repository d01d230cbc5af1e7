#include "parallel/tp_linear.h"

#include "src/core/error.h"

namespace ringtrain {
namespace {
void copy_if_distinct(const TpGroup& g, const float* src, float* dst, int64_t count) {
  if (src != dst) g.backend->copy(dst, src, static_cast<size_t>(count) * sizeof(float));
}
void check_rows(const TpGroup& g, int64_t n) {
  RT_CHECK(!g.sequence_parallel || n % g.size() == 0, "sequence parallel: ", n,
           " token rows not divisible by tp = ", g.size());
}
}  // namespace

void tp_enter_forward(const TpGroup& g, const float* x_held, float* x_full, int64_t n, int64_t dim) {
  check_rows(g, n);
  if (g.size() > 1 && g.sequence_parallel)
    g.comm->all_gather(x_held, x_full, static_cast<size_t>(n / g.size() * dim), DType::kF32);
  else
    copy_if_distinct(g, x_held, x_full, n * dim);
}

void tp_enter_backward(const TpGroup& g, float* dx_full, float* dx_held, int64_t n, int64_t dim) {
  check_rows(g, n);
  if (g.size() == 1) return copy_if_distinct(g, dx_full, dx_held, n * dim);
  if (g.sequence_parallel) {
    g.comm->reduce_scatter(dx_full, dx_held, static_cast<size_t>(n / g.size() * dim), DType::kF32,
                           ReduceOp::kSum);
  } else {
    g.comm->all_reduce(dx_full, static_cast<size_t>(n * dim), DType::kF32, ReduceOp::kSum);
    copy_if_distinct(g, dx_full, dx_held, n * dim);
  }
}

void tp_leave_forward(const TpGroup& g, float* y_full, float* y_held, int64_t n, int64_t dim) {
  tp_enter_backward(g, y_full, y_held, n, dim);  // the same communication: sum over tp
}

void tp_leave_backward(const TpGroup& g, const float* dy_held, float* dy_full, int64_t n, int64_t dim) {
  tp_enter_forward(g, dy_held, dy_full, n, dim);  // the same communication: replicate over tp
}

}  // namespace ringtrain
