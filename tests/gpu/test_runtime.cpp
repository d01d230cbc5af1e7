// The GPU layer's runtime: device properties, launch limits (the same errors as CUDA),
// memory, streams/events and the operation trace, GEMM's contract, and the emulator's
// execution model (3-D indices, early exit before a barrier, deadlock and misuse reports).
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <cmath>
#include <cstring>

#include "src/core/error.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/kernels/runtime_kernels.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

using gpu::Status;

// Catches: an emulated device passing itself off as a real one.
TEST(GpuRuntime, DevicePropertiesSayWhatTheDeviceIs) {
  gpu::DeviceProps p;
  ASSERT_EQ(gpu::get_device_properties(&p, 0), Status::kSuccess);
  EXPECT_FALSE(p.name.empty());
  EXPECT_EQ(p.emulated, gpu::kEmulated);
  if (gpu::kEmulated) {
    EXPECT_NE(p.name.find("emulated"), std::string::npos);
    EXPECT_EQ(p.shared_per_block_optin, gpu::emulated_arch() == gpu::Arch::kSm80 ? 163u * 1024u : 227u * 1024u);
    EXPECT_EQ(p.max_threads_per_block, 1024);
  }
}

// Restores the enforced architecture.
class ArchGuard {
 public:
  ArchGuard() : a_(gpu::emulated_arch()) {}
  ~ArchGuard() { gpu::set_emulated_arch(a_); }

 private:
  gpu::Arch a_;
};

// Catches: launches a device would refuse running in emulation (block > 1024 threads, more
// than 48 KiB of dynamic shared memory without the attribute, above the architecture's opt-in
// maximum ever: 227 KiB on sm_90a, 163 KiB on sm_80).
TEST(GpuRuntime, LaunchLimitsGiveCudaErrors) {
  ArchGuard arch;
  if (gpu::kEmulated) gpu::set_emulated_arch(gpu::Arch::kSm90a);
  DeviceBuffer<float> out(1);
  EXPECT_EQ(launch_touch_smem(dim3(1025), 0, out.get()), Status::kInvalidConfiguration);
  (void)gpu::get_last_error();
  EXPECT_EQ(launch_touch_smem(dim3(32, 32, 2), 0, out.get()), Status::kInvalidConfiguration);
  (void)gpu::get_last_error();
  EXPECT_EQ(launch_touch_smem(dim3(1, 1, 65), 0, out.get()), Status::kInvalidConfiguration);
  (void)gpu::get_last_error();
  EXPECT_EQ(launch_touch_smem(dim3(1024), 48 * 1024, out.get()), Status::kSuccess);
  EXPECT_EQ(launch_touch_smem(dim3(32), 48 * 1024 + 16, out.get()), Status::kInvalidValue);
  (void)gpu::get_last_error();
  EXPECT_EQ(raise_touch_smem_limit(227 * 1024 + 4), Status::kInvalidValue);
  (void)gpu::get_last_error();
  ASSERT_EQ(raise_touch_smem_limit(100 * 1024), Status::kSuccess);
  EXPECT_EQ(launch_touch_smem(dim3(32), 100 * 1024, out.get()), Status::kSuccess);
  EXPECT_EQ(launch_touch_smem(dim3(32), 100 * 1024 + 16, out.get()), Status::kInvalidValue);
  (void)gpu::get_last_error();
  ASSERT_EQ(raise_touch_smem_limit(227 * 1024), Status::kSuccess);
  EXPECT_EQ(launch_touch_smem(dim3(32), 227 * 1024, out.get()), Status::kSuccess);
  EXPECT_EQ(out.download()[0], 3.0f);
  EXPECT_EQ(gpu::get_last_error(), Status::kSuccess);
}

// Catches: an sm_80 build launching what only an H100 allows: the A100's opt-in maximum is
// 163 KiB per block, both for the attribute and for an attribute raised earlier.
TEST(GpuRuntime, Sm80OptInMaximumIs163KiB) {
  if (!gpu::kEmulated) GTEST_SKIP() << "the emulator's architecture switch";
  ArchGuard arch;
  DeviceBuffer<float> out(1);
  gpu::set_emulated_arch(gpu::Arch::kSm80);
  EXPECT_EQ(raise_touch_smem_limit(163 * 1024 + 16), Status::kInvalidValue);
  (void)gpu::get_last_error();
  ASSERT_EQ(raise_touch_smem_limit(163 * 1024), Status::kSuccess);
  EXPECT_EQ(launch_touch_smem(dim3(32), 163 * 1024, out.get()), Status::kSuccess);
  gpu::set_emulated_arch(gpu::Arch::kSm90a);
  ASSERT_EQ(raise_touch_smem_limit(200 * 1024), Status::kSuccess);
  gpu::set_emulated_arch(gpu::Arch::kSm80);
  EXPECT_EQ(launch_touch_smem(dim3(32), 200 * 1024, out.get()), Status::kInvalidValue);
  (void)gpu::get_last_error();
}

// Catches: static shared memory left out of the budget. The device counts static plus
// dynamic against 48 KiB unless the kernel opted in, then against the opt-in maximum.
TEST(GpuRuntime, StaticPlusDynamicSharedMemoryIsLimited) {
  if (!gpu::kEmulated) GTEST_SKIP() << "the emulator's refusal is a kernel fault, the device's a launch error";
  ArchGuard arch;
  DeviceBuffer<float> out(1);
  EXPECT_EQ(launch_touch_static_and_dynamic_smem(32 * 1024, out.get()), Status::kSuccess);
  EXPECT_EQ(out.download()[0], 3.0f);
  auto refused = [&](size_t dynamic, const char* why) {
    try {
      (void)launch_touch_static_and_dynamic_smem(dynamic, out.get());
      ADD_FAILURE() << "16 KiB static + " << dynamic << " bytes dynamic shared memory launched";
    } catch (const ringtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
    (void)gpu::get_last_error();
  };
  refused(32 * 1024 + 16, "48 KiB without func_set_max_dynamic_smem");
  for (gpu::Arch a : {gpu::Arch::kSm80, gpu::Arch::kSm90a}) {
    gpu::set_emulated_arch(a);
    const size_t optin = a == gpu::Arch::kSm80 ? 163 * 1024 : 227 * 1024;
    ASSERT_EQ(raise_static_and_dynamic_smem_limit(static_cast<int>(optin)), Status::kSuccess);
    EXPECT_EQ(launch_touch_static_and_dynamic_smem(optin - 16 * 1024, out.get()), Status::kSuccess);
    refused(optin - 16 * 1024 + 16, "opt-in maximum");
  }
}

// __launch_bounds__ is a launch limit, as on the device: a block above the bound is refused
// (ptxas sized the kernel's registers for the bound), up to it runs. Catches a launch
// configuration changed without the kernel's bound, which the emulator would otherwise run.
TEST(GpuRuntime, LaunchBoundsAreALaunchLimit) {
  DeviceBuffer<int> out(128);
  out.poison();
  EXPECT_EQ(launch_bounded_iota(96, out.get()), Status::kSuccess);
  EXPECT_EQ(out.download()[95], 95);
  EXPECT_EQ(launch_bounded_iota(97, out.get()), Status::kLaunchOutOfResources);
  if (gpu::kEmulated) {
    EXPECT_NE(gpu::last_error_detail().find("__launch_bounds__(96)"), std::string::npos) << gpu::last_error_detail();
  }
  (void)gpu::get_last_error();
}

// Catches: a block whose registers (ptxas's count per thread, allocated per warp) exceed the
// 65,536 of the register file launching in emulation while the device refuses it. The kernel
// uses 104 (sm_80) / 105 (sm_90a) registers: 256 threads fit, 1024 need 106,496 / 114,688.
TEST(GpuRuntime, RegistersTimesThreadsAreALaunchLimit) {
  ArchGuard arch;
  DeviceBuffer<float> in(std::vector<float>(96, 0.5f)), out(1024);
  for (gpu::Arch a : {gpu::Arch::kSm80, gpu::Arch::kSm90a}) {
    if (gpu::kEmulated) gpu::set_emulated_arch(a);
    EXPECT_EQ(launch_register_heavy(256, in.get(), out.get()), Status::kSuccess);
    EXPECT_EQ(launch_register_heavy(1024, in.get(), out.get()), Status::kLaunchOutOfResources);
    if (gpu::kEmulated) {
      const std::string why = gpu::last_error_detail();
      EXPECT_NE(why.find(a == gpu::Arch::kSm80 ? "104 per thread on sm_80" : "105 per thread on sm_90a"),
                std::string::npos) << why;
    }
    (void)gpu::get_last_error();
  }
}

// Catches: allocations that start zeroed (hiding reads of unwritten data), copies that run
// past an allocation (a count in bytes where elements were meant, or the reverse).
TEST(GpuRuntime, MemoryCopiesPoisonAndBounds) {
  std::vector<float> host(100);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i);
  DeviceBuffer<float> a(100), b(100);
  if (gpu::kEmulated) {
    for (float v : a.download()) EXPECT_TRUE(std::isnan(v)) << "fresh device memory must be poisoned";
  }
  a.upload(host);
  ASSERT_EQ(gpu::memcpy(b.get(), a.get(), 100 * sizeof(float), gpu::CopyKind::kDeviceToDevice), Status::kSuccess);
  EXPECT_EQ(b.download(), host);
  ASSERT_EQ(gpu::memset(b.get(), 0, 10 * sizeof(float)), Status::kSuccess);
  EXPECT_EQ(b.download()[9], 0.0f);
  EXPECT_EQ(b.download()[10], 10.0f);
  EXPECT_TRUE(gpu::is_device_pointer(a.get()));
  EXPECT_FALSE(gpu::is_device_pointer(host.data()));
  if (gpu::kEmulated) {
    std::vector<float> big(101);
    EXPECT_EQ(gpu::memcpy(big.data(), a.get(), 101 * sizeof(float), gpu::CopyKind::kDeviceToHost), Status::kInvalidValue);
    EXPECT_NE(gpu::last_error_detail().find("allocation of 400 bytes"), std::string::npos) << gpu::last_error_detail();
    EXPECT_EQ(gpu::memcpy(a.get(), big.data(), 101 * sizeof(float), gpu::CopyKind::kHostToDevice), Status::kInvalidValue);
    EXPECT_EQ(gpu::device_free(host.data()), Status::kInvalidValue);
    (void)gpu::get_last_error();
  }
}

// Catches: events that never complete, streams whose work is not recorded in issue order.
TEST(GpuRuntime, StreamsEventsAndTrace) {
  gpu::Stream s1, s2;
  gpu::Event e1, e2;
  ASSERT_EQ(gpu::stream_create(&s1), Status::kSuccess);
  ASSERT_EQ(gpu::stream_create(&s2), Status::kSuccess);
  ASSERT_EQ(gpu::event_create(&e1), Status::kSuccess);
  ASSERT_EQ(gpu::event_create(&e2), Status::kSuccess);
  DeviceBuffer<float> a(64), b(64);
  std::vector<float> host(64, 2.0f);
  gpu::trace_start();
  ASSERT_EQ(gpu::event_record(e1, s1), Status::kSuccess);
  ASSERT_EQ(gpu::memcpy_async(a.get(), host.data(), 64 * sizeof(float), gpu::CopyKind::kHostToDevice, s2), Status::kSuccess);
  ASSERT_EQ(gpu::event_record(e2, s2), Status::kSuccess);
  ASSERT_EQ(gpu::stream_wait_event(s1, e2), Status::kSuccess);
  ASSERT_EQ(gpu::memcpy_async(b.get(), a.get(), 64 * sizeof(float), gpu::CopyKind::kDeviceToDevice, s1), Status::kSuccess);
  const auto trace = gpu::trace_stop();
  ASSERT_EQ(gpu::stream_synchronize(s1), Status::kSuccess);
  EXPECT_EQ(gpu::event_query(e2), Status::kSuccess);
  ASSERT_EQ(gpu::event_synchronize(e2), Status::kSuccess);
  float ms = -1;
  EXPECT_EQ(gpu::event_elapsed_ms(&ms, e1, e2), Status::kSuccess);
  EXPECT_GE(ms, 0.0f);
  EXPECT_EQ(b.download(), host);
  if (gpu::kEmulated) {
    ASSERT_EQ(trace.size(), 5u);
    EXPECT_EQ(trace[1].stream_id, gpu::stream_id(s2));
    EXPECT_EQ(trace[1].what.rfind("memcpy", 0), 0u);
    EXPECT_EQ(trace[3].stream_id, gpu::stream_id(s1));
    EXPECT_EQ(trace[3].what.rfind("wait_event", 0), 0u);
  }
  gpu::event_destroy(e1);
  gpu::event_destroy(e2);
  gpu::stream_destroy(s1);
  gpu::stream_destroy(s2);
}

// Catches (deferred stream mode): a consumer stream that does not wait on its producer's event
// reads poison, while the same program with the wait gets the data; a GEMM issued on a stream
// runs only when the stream is synchronized.
TEST(GpuRuntime, DeferredStreamsExposeMissingEventWaits) {
  if (!gpu::kEmulated) GTEST_SKIP() << "emulator-only mode";
  gpu::set_stream_mode(gpu::StreamMode::kDeferred);
  gpu::Stream producer, consumer;
  gpu::Event ready;
  ASSERT_EQ(gpu::stream_create(&producer), Status::kSuccess);
  ASSERT_EQ(gpu::stream_create(&consumer), Status::kSuccess);
  ASSERT_EQ(gpu::event_create(&ready), Status::kSuccess);
  const std::vector<float> host(64, 5.0f);
  for (bool wait : {true, false}) {
    DeviceBuffer<float> a(64), b(64);
    ASSERT_EQ(gpu::memcpy_async(a.get(), host.data(), 64 * sizeof(float), gpu::CopyKind::kHostToDevice, producer), Status::kSuccess);
    ASSERT_EQ(gpu::event_record(ready, producer), Status::kSuccess);
    if (wait) {
      ASSERT_EQ(gpu::stream_wait_event(consumer, ready), Status::kSuccess);
    }
    ASSERT_EQ(gpu::memcpy_async(b.get(), a.get(), 64 * sizeof(float), gpu::CopyKind::kDeviceToDevice, consumer), Status::kSuccess);
    ASSERT_EQ(gpu::stream_synchronize(consumer), Status::kSuccess);
    std::vector<float> got(64);
    ASSERT_EQ(gpu::memcpy(got.data(), b.get(), 64 * sizeof(float), gpu::CopyKind::kDeviceToHost), Status::kSuccess);
    if (wait) {
      EXPECT_EQ(got, host);
    } else {
      EXPECT_TRUE(std::isnan(got[0])) << "the consumer ran before its producer: it must see poison";
    }
    ASSERT_EQ(gpu::event_synchronize(ready), Status::kSuccess);
  }
  {
    const std::vector<__nv_bfloat16> one(4, __float2bfloat16(1.0f));
    DeviceBuffer<__nv_bfloat16> x(one);
    DeviceBuffer<float> y(4);
    y.poison();
    CUDA_CHECK(gpu::gemm(producer, false, false, 2, 2, 2, 1.0f, x.get(), DType::kBF16, 2, x.get(), DType::kBF16, 2, 0.0f,
                         y.get(), DType::kF32, 2));
    std::vector<float> before(4);
    CUDA_CHECK(gpu::memcpy(before.data(), y.get(), 4 * sizeof(float), gpu::CopyKind::kDeviceToHost));
    EXPECT_TRUE(std::isnan(before[0])) << "deferred: the GEMM has not run before its stream is synchronized";
    CUDA_CHECK(gpu::stream_synchronize(producer));
    EXPECT_EQ(y.download(), std::vector<float>(4, 2.0f));
  }
  gpu::event_destroy(ready);
  gpu::stream_destroy(producer);
  gpu::stream_destroy(consumer);
  gpu::set_stream_mode(gpu::StreamMode::kEager);
}

// Catches: wrong linearization of 3-D thread and block indices.
TEST(GpuRuntime, ThreeDimensionalIndices) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const int n = 3 * 2 * 2 * 4 * 3 * 2;
  DeviceBuffer<int> out(static_cast<size_t>(n));
  const auto got = same_under_all_schedules<int>([&] {
    out.poison();
    CUDA_CHECK(launch_iota3d(grid, block, out.get()));
    return out.download();
  }, "iota3d");
  for (int i = 0; i < n; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], i);
}

// Catches: threads that returned early being counted at a barrier (a hang) or not synchronized.
TEST(GpuRuntime, ExitedThreadsLeaveTheBarrierCount) {
  DeviceBuffer<int> out(32);
  const auto got = same_under_all_schedules<int>([&] {
    out.poison();
    CUDA_CHECK(launch_early_exit_barrier(out.get()));
    return out.download();
  }, "early exit");
  for (int i = 0; i < 32; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], 4 * i + 1);
}

// Catches: __syncthreads_count/_or/_and counting the wrong threads or mixing two barriers.
TEST(GpuRuntime, BarrierReductions) {
  DeviceBuffer<int> out(4);
  const auto got = same_under_all_schedules<int>([&] {
    out.poison();
    CUDA_CHECK(launch_barrier_reductions(out.get()));
    return out.download();
  }, "barrier reductions");
  EXPECT_EQ(got, (std::vector<int>{32, 1, 1, 0}));
}

template <typename F>
std::string fault_of(F&& f) {
  try {
    f();
  } catch (const ringtrain::Error& e) {
    (void)gpu::get_last_error();
    return e.what();
  }
  return "";
}

// Catches: an emulator that hangs or silently continues on kernels that are broken on a GPU.
TEST(GpuRuntime, EmulatorReportsMisuse) {
  if (!gpu::kEmulated) GTEST_SKIP() << "emulator-only checks";
  EXPECT_NE(fault_of([] { (void)launch_deadlock(); }).find("deadlock"), std::string::npos);
  EXPECT_NE(fault_of([] { (void)launch_bad_shuffle_mask(); }).find("not in the mask"), std::string::npos);
  DeviceBuffer<uint16_t> g(64);
  EXPECT_NE(fault_of([&] { (void)launch_ldmatrix_from_global(g.get()); }).find("shared memory"), std::string::npos);
  DeviceBuffer<float> src(8);
  EXPECT_EQ(fault_of([&] { (void)launch_cp_async_from(src.get(), 4); }), "");
  const std::string oob = fault_of([&] { (void)launch_cp_async_from(src.get(), 8); });
  EXPECT_NE(oob.find("out-of-bounds global read"), std::string::npos) << oob;
  EXPECT_NE(oob.find("cp_async_from_kernel"), std::string::npos) << oob;
}

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = __float2bfloat16(v[i]);
  return r;
}

// Catches: transposes or leading dimensions mixed up in the row-major GEMM contract, C read
// when beta == 0 (poisoned C would turn into NaN), epilogue errors.
TEST(GpuRuntime, GemmThroughTheLayer) {
  const int m = 19, n = 23, k = 37;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 0.5f}) {
        const uint64_t seed = 300 + (ta ? 1 : 0) + (tb ? 2 : 0);
        SCOPED_TRACE("seed " + std::to_string(seed) + " ta " + std::to_string(ta) + " tb " + std::to_string(tb) + " beta " + std::to_string(beta));
        const auto fa = random_floats(static_cast<size_t>(m) * k, seed), fb = random_floats(static_cast<size_t>(k) * n, seed + 1);
        const auto fc = random_floats(static_cast<size_t>(m) * n, seed + 2);
        const auto a = to_bf16(fa), b = to_bf16(fb);
        DeviceBuffer<__nv_bfloat16> da(a), db(b);
        DeviceBuffer<float> dc(static_cast<size_t>(m) * n);
        if (beta != 0.0f) dc.upload(fc); else dc.poison();
        const int lda = ta ? m : k, ldb = tb ? k : n;
        CUDA_CHECK(gpu::gemm(nullptr, ta, tb, m, n, k, 1.5f, da.get(), DType::kBF16, lda, db.get(), DType::kBF16, ldb, beta,
                             dc.get(), DType::kF32, n));
        const auto got = dc.download();
        std::vector<double> ref(got.size());
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int p = 0; p < k; ++p) {
              const float av = __bfloat162float(a[static_cast<size_t>(ta ? p * m + i : i * k + p)]);
              const float bv = __bfloat162float(b[static_cast<size_t>(tb ? j * k + p : p * n + j)]);
              s += static_cast<double>(av) * bv;
            }
            ref[static_cast<size_t>(i * n + j)] = 1.5 * s + (beta != 0.0f ? beta * fc[static_cast<size_t>(i * n + j)] : 0.0);
          }
        EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "gemm"), "");
      }
}

}  // namespace
}  // namespace ringtrain::test
