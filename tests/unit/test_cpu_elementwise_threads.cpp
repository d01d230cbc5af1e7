// The step's elementwise passes on the kernels' thread pool (AdamW, SwiGLU, the RMSNorm
// forward) cut their elements or rows between threads: every element must come out bit for bit
// as on one thread, whatever the cut (their accuracy against references is test_kernels_basic's).
// Catches: a range left out or done twice at a cut, a cut that is not a multiple of the
// vector width reading past its end, a per-thread constant (AdamW's bias correction) computed
// from the wrong step.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/rmsnorm.h"

namespace ringtrain {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (float& e : x) e = u(gen);
  return x;
}

struct Outputs {
  std::vector<float> param, m, v, h, dgate, dup, y, rstd;
};

Outputs run_all(int threads, int64_t n, int rows, int dim) {
  attention_set_cpu_threads(threads);
  Outputs o;
  o.param = random_floats(static_cast<size_t>(n), 1);
  o.m = random_floats(static_cast<size_t>(n), 2, -0.1f, 0.1f);
  o.v = random_floats(static_cast<size_t>(n), 3, 0.0f, 0.1f);
  const std::vector<float> grad = random_floats(static_cast<size_t>(n), 4);
  AdamWArgs a;
  a.weight_decay = 0.1f;
  for (int64_t step = 1; step <= 3; ++step) {
    a.step = step;
    adamw_step(a, o.param.data(), grad.data(), o.m.data(), o.v.data(), n);
  }
  const std::vector<float> gate = random_floats(static_cast<size_t>(n), 5, -8.0f, 8.0f), up = random_floats(static_cast<size_t>(n), 6);
  const std::vector<float> dh = random_floats(static_cast<size_t>(n), 7);
  o.h.resize(static_cast<size_t>(n));
  o.dgate.resize(static_cast<size_t>(n));
  o.dup.resize(static_cast<size_t>(n));
  swiglu_forward(gate.data(), up.data(), o.h.data(), n);
  swiglu_backward(dh.data(), gate.data(), up.data(), o.dgate.data(), o.dup.data(), n);
  RmsNormArgs r;
  r.rows = rows;
  r.dim = dim;
  const std::vector<float> x = random_floats(static_cast<size_t>(rows) * dim, 8), w = random_floats(static_cast<size_t>(dim), 9);
  o.y.resize(static_cast<size_t>(rows) * dim);
  o.rstd.resize(static_cast<size_t>(rows));
  rmsnorm_forward(r, x.data(), w.data(), o.y.data(), o.rstd.data());
  attention_set_cpu_threads(1);
  return o;
}

TEST(CpuElementwiseThreads, SameBitsOnAnyThreadCount) {
  // sizes whose cuts fall off the 64-element grid and leave a ragged last range
  const int64_t n = 3 * 65536 + 77;
  const int rows = 1031, dim = 200;
  const Outputs one = run_all(1, n, rows, dim);
  for (int threads : {2, 3, 5}) {
    SCOPED_TRACE(::testing::Message() << threads << " threads");
    const Outputs o = run_all(threads, n, rows, dim);
    EXPECT_TRUE(o.param == one.param && o.m == one.m && o.v == one.v) << "adamw";
    EXPECT_TRUE(o.h == one.h && o.dgate == one.dgate && o.dup == one.dup) << "swiglu";
    EXPECT_TRUE(o.y == one.y && o.rstd == one.rstd) << "rmsnorm";
  }
}

}  // namespace
}  // namespace ringtrain
