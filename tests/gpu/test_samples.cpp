// Sample kernels through the GPU layer against CPU references, under every schedule: the
// warp-per-row RMSNorm and block softmax (shuffle reductions, shared memory, barriers) and the
// tiled bf16 GEMM (ldmatrix + mma.sync + cp.async double buffering), odd sizes included.
// Catches: wrong shuffle reductions, tail rows/columns dropped or written twice, fragment or
// tile-index errors, a pipeline that reads a stage before its copy landed.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "tests/gpu/gpu_test.h"
#include "tests/gpu/samples/samples.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

TEST(GpuSamples, RmsNormMatchesReference) {
  for (const auto& shape : {std::pair{37, 300}, std::pair{1, 33}, std::pair{8, 4096}}) {
    const int rows = shape.first, cols = shape.second;  // named: clang 14 captures no structured binding
    const uint64_t seed = 1000 + static_cast<uint64_t>(rows * cols);
    SCOPED_TRACE("seed " + std::to_string(seed) + " rows " + std::to_string(rows) + " cols " + std::to_string(cols));
    const auto x = random_floats(static_cast<size_t>(rows) * cols, seed), w = random_floats(static_cast<size_t>(cols), seed + 1);
    DeviceBuffer<float> dx(x), dw(w), dy(x.size());
    const auto got = same_under_all_schedules<float>([&] {
      dy.poison();
      CUDA_CHECK(sample_rmsnorm(dx.get(), dw.get(), dy.get(), rows, cols, 1e-5f, nullptr));
      return dy.download();
    }, "rmsnorm");
    std::vector<double> ref(x.size());
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int c = 0; c < cols; ++c) ss += static_cast<double>(x[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(r * cols + c)];
      const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
      for (int c = 0; c < cols; ++c) ref[static_cast<size_t>(r * cols + c)] = x[static_cast<size_t>(r * cols + c)] * inv * w[static_cast<size_t>(c)];
    }
    EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "rmsnorm"), "");
  }
}

std::vector<double> softmax_ref(const std::vector<float>& x, int rows, int cols) {
  std::vector<double> ref(x.size());
  for (int r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < cols; ++c) m = std::max(m, static_cast<double>(x[static_cast<size_t>(r * cols + c)]));
    for (int c = 0; c < cols; ++c) s += std::exp(x[static_cast<size_t>(r * cols + c)] - m);
    for (int c = 0; c < cols; ++c) ref[static_cast<size_t>(r * cols + c)] = std::exp(x[static_cast<size_t>(r * cols + c)] - m) / s;
  }
  return ref;
}

TEST(GpuSamples, SoftmaxMatchesReference) {
  const int rows = 5, cols = 1000;
  const uint64_t seed = 77;
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto x = random_floats(static_cast<size_t>(rows) * cols, seed, -4.0f, 4.0f);
  DeviceBuffer<float> dx(x), dy(x.size());
  const auto got = same_under_all_schedules<float>([&] {
    dy.poison();
    CUDA_CHECK(sample_softmax(dx.get(), dy.get(), rows, cols, false, nullptr));
    return dy.download();
  }, "softmax");
  const auto ref = softmax_ref(x, rows, cols);
  EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "softmax"), "");
}

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = __float2bfloat16(v[i]);
  return r;
}

TEST(GpuSamples, TiledBf16GemmMatchesReference) {
  struct Size {
    int m, n, k;
  };
  for (const Size sz : {Size{64, 64, 64}, Size{67, 45, 83}, Size{130, 72, 96}, Size{1, 8, 8}, Size{33, 200, 40}, Size{5, 3, 1}}) {
    const uint64_t seed = 5000 + static_cast<uint64_t>(sz.m * 7 + sz.n * 13 + sz.k);
    SCOPED_TRACE("seed " + std::to_string(seed) + " m " + std::to_string(sz.m) + " n " + std::to_string(sz.n) + " k " + std::to_string(sz.k));
    const auto fa = random_floats(static_cast<size_t>(sz.m) * sz.k, seed), fb = random_floats(static_cast<size_t>(sz.k) * sz.n, seed + 1);
    const auto a = to_bf16(fa), b = to_bf16(fb);
    DeviceBuffer<__nv_bfloat16> da(a), db(b);
    DeviceBuffer<float> dc(static_cast<size_t>(sz.m) * sz.n);
    const auto got = same_under_all_schedules<float>([&] {
      dc.poison();
      CUDA_CHECK(sample_gemm_bf16(da.get(), db.get(), dc.get(), sz.m, sz.n, sz.k, nullptr));
      return dc.download();
    }, "gemm");
    // Against the fp32 inputs (the contract: bf16 inputs, fp32 accumulation) with the bf16
    // tolerance, and against the bf16-rounded inputs with the fp32 one (layout errors).
    std::vector<double> ref(got.size()), ref_rounded(got.size());
    for (int i = 0; i < sz.m; ++i)
      for (int j = 0; j < sz.n; ++j) {
        double s = 0, sr = 0;
        for (int p = 0; p < sz.k; ++p) {
          s += static_cast<double>(fa[static_cast<size_t>(i * sz.k + p)]) * fb[static_cast<size_t>(p * sz.n + j)];
          sr += static_cast<double>(__bfloat162float(a[static_cast<size_t>(i * sz.k + p)])) * __bfloat162float(b[static_cast<size_t>(p * sz.n + j)]);
        }
        ref[static_cast<size_t>(i * sz.n + j)] = s;
        ref_rounded[static_cast<size_t>(i * sz.n + j)] = sr;
      }
    EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kBF16, "gemm vs fp32 inputs"), "");
    EXPECT_EQ(compare(got.data(), ref_rounded.data(), static_cast<int64_t>(ref.size()), kF32, "gemm vs bf16 inputs"), "");
  }
}

// Not a correctness test: prints what the emulator costs (docs/GPU-EMULATION.md quotes it).
TEST(GpuSamples, EmulatorSpeed) {
  const int m = 256, n = 256, k = 256;
  const auto a = to_bf16(random_floats(static_cast<size_t>(m) * k, 1)), b = to_bf16(random_floats(static_cast<size_t>(k) * n, 2));
  DeviceBuffer<__nv_bfloat16> da(a), db(b);
  DeviceBuffer<float> dc(static_cast<size_t>(m) * n);
  CUDA_CHECK(sample_gemm_bf16(da.get(), db.get(), dc.get(), m, n, k, nullptr));  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  CUDA_CHECK(sample_gemm_bf16(da.get(), db.get(), dc.get(), m, n, k, nullptr));
  CUDA_CHECK(gpu::device_synchronize());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double mmas = (m / 16.0) * (n / 8.0) * (k / 16.0);
  std::printf("tiled bf16 GEMM %dx%dx%d: %.1f ms (%.0f mma.sync, %.2f us per warp-level mma incl. ldmatrix/cp.async/barriers)\n",
              m, n, k, ms, mmas, 1000.0 * ms / mmas);
}

}  // namespace
}  // namespace ringtrain::test
