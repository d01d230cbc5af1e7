// The emulator finds bugs, not only runs code: each test here runs a broken kernel and asserts
// that the emulated device reports it. On a real device these tests are skipped (a GPU does not
// fault on a read 4 bytes past an allocation; compute-sanitizer is the tool there).
#include <gtest/gtest.h>

#include <cmath>

#include "src/core/error.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/samples/samples.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

#define SKIP_ON_REAL_DEVICE() \
  if (!gpu::kEmulated) GTEST_SKIP() << "emulator-only check"

// What the report looks like: the emulator's own (guard pages) or AddressSanitizer's.
#if defined(RINGTRAIN_EMU_ASAN)
constexpr const char* kReadPastEndReport = "heap-buffer-overflow";
constexpr const char* kSharedPastEndReport = "heap-buffer-overflow|use-after-poison";
#else
constexpr const char* kReadPastEndReport =
    "out-of-bounds access: read or write 0 bytes past the end of a device allocation of 4096 bytes.*read_past_end_kernel";
constexpr const char* kSharedPastEndReport = "out-of-bounds access: access beyond the end of dynamic shared memory";
#endif

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

// Catches: the harness missing a race. The softmax with its first __syncthreads removed must
// disagree across schedules or with the reference (and the intact kernel must not).
TEST(GpuNegative, MissingSyncthreadsIsDetected) {
  SKIP_ON_REAL_DEVICE();
  const int rows = 3, cols = 777;
  const auto x = random_floats(static_cast<size_t>(rows) * cols, 4242, -3.0f, 3.0f);
  const auto ref = softmax_ref(x, rows, cols);
  DeviceBuffer<float> dx(x), dy(x.size());
  for (bool skip : {false, true}) {
    const auto results = run_all_schedules<float>([&] {
      dy.poison();
      CUDA_CHECK(sample_softmax(dx.get(), dy.get(), rows, cols, skip, nullptr));
      return dy.download();
    });
    bool schedules_disagree = false, wrong = false;
    for (size_t s = 0; s < results.size(); ++s) {
      schedules_disagree |= first_bitwise_difference(results[0], results[s]) != -1;
      wrong |= !compare(results[s].data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "softmax").empty();
    }
    if (skip) {
      EXPECT_TRUE(schedules_disagree || wrong) << "a kernel without its barrier passed every schedule";
      std::printf("missing __syncthreads: schedules disagree: %s, wrong vs reference: %s\n",
                  schedules_disagree ? "yes" : "no", wrong ? "yes" : "no");
    } else {
      EXPECT_FALSE(schedules_disagree || wrong) << "the intact kernel must pass";
    }
  }
}

// Catches: a cp.async prefetch into a shared-memory stage that other warps are still reading
// (the __syncthreads between the last read of a stage and the next prefetch into it removed,
// the barrier at the end of the flash kernels' key loop). On hardware the copy may land any
// time after issue; the emulator lands it at issue under ascending+eager, where warp 0 runs its
// whole iteration and the next prefetch before warp 1 reads the stage. With copies landing at
// the wait (lazy) the bug is invisible in every thread order, which is why the schedules vary
// the landing too. The intact GEMM must pass every schedule.
TEST(GpuNegative, PrefetchIntoStageStillBeingReadIsDetected) {
  SKIP_ON_REAL_DEVICE();
  const int m = 64, n = 64, k = 128;  // four k tiles: stages are reused twice
  const uint64_t seed = 777;
  const auto fa = random_floats(static_cast<size_t>(m) * k, seed), fb = random_floats(static_cast<size_t>(k) * n, seed + 1);
  std::vector<__nv_bfloat16> a(fa.size()), b(fb.size());
  for (size_t i = 0; i < fa.size(); ++i) a[i] = __float2bfloat16(fa[i]);
  for (size_t i = 0; i < fb.size(); ++i) b[i] = __float2bfloat16(fb[i]);
  std::vector<double> ref(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int p = 0; p < k; ++p)
        acc += static_cast<double>(__bfloat162float(a[static_cast<size_t>(i * k + p)])) * __bfloat162float(b[static_cast<size_t>(p * n + j)]);
      ref[static_cast<size_t>(i * n + j)] = acc;
    }
  DeviceBuffer<__nv_bfloat16> da(a), db(b);
  DeviceBuffer<float> dc(ref.size());
  const auto cases = all_schedules();
  for (bool skip : {false, true}) {
    const auto results = run_all_schedules<float>([&] {
      dc.poison();
      CUDA_CHECK(sample_gemm_bf16(da.get(), db.get(), dc.get(), m, n, k, nullptr, skip));
      return dc.download();
    });
    std::string caught_by;
    for (size_t s = 0; s < results.size(); ++s)
      if (!compare(results[s].data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "gemm").empty())
        caught_by.append(" ").append(cases[s].name());
    if (skip) {
      EXPECT_NE(caught_by, "") << "a prefetch into a stage still being read passed every schedule (seed " << seed << ")";
      EXPECT_NE(caught_by.find("ascending+eager"), std::string::npos) << "caught by:" << caught_by;
      std::printf("prefetch without the stage barrier: wrong under%s\n", caught_by.c_str());
    } else {
      EXPECT_EQ(caught_by, "") << "the intact GEMM must pass; wrong under" << caught_by << " (seed " << seed << ")";
    }
  }
}


// Catches: a read one element past a device allocation going unnoticed. The allocation of
// 1024 floats ends at a guard page; the fault handler names the allocation, kernel and thread.
TEST(GpuNegativeDeathTest, ReadOnePastEndIsReported) {
  SKIP_ON_REAL_DEVICE();
  const int n = 1024;
  DeviceBuffer<float> in(std::vector<float>(n, 1.0f)), out(n);
  EXPECT_DEATH({ (void)sample_read_past_end(in.get(), out.get(), n, nullptr); }, kReadPastEndReport);
}

// Catches: a write past the end that stays inside the 16-byte alignment slack (no guard page
// there): the slack's canary is checked after every launch.
TEST(GpuNegative, WritePastEndIsReported) {
  SKIP_ON_REAL_DEVICE();
  const int n = 1023;
  DeviceBuffer<float> out(n);
#if defined(RINGTRAIN_EMU_ASAN)
  EXPECT_DEATH({ (void)sample_write_past_end(out.get(), n, nullptr); }, "heap-buffer-overflow");
  return;
#endif
  try {
    (void)sample_write_past_end(out.get(), n, nullptr);
    ADD_FAILURE() << "a write past the end went unnoticed";
  } catch (const ringtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out-of-bounds write"), std::string::npos) << e.what();
  }
  (void)gpu::get_last_error();
}

// Catches: dynamic shared memory read past what the launch requested.
TEST(GpuNegativeDeathTest, SharedMemoryReadPastEndIsReported) {
  SKIP_ON_REAL_DEVICE();
  DeviceBuffer<float> out(1);
  EXPECT_DEATH({ (void)sample_smem_read_past_end(out.get(), 256, nullptr); }, kSharedPastEndReport);
}

}  // namespace
}  // namespace ringtrain::test
