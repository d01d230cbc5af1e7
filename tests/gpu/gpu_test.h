// Helpers for GPU-labelled tests: device buffers and the schedule harness. The same tests run
// on the emulated device (every schedule) and on a real one (where schedules do not exist and
// the harness checks run-to-run determinism instead).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "src/device/gpu.h"

namespace ringtrain::test {

// Device memory holding n elements of T, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) { CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&p_), n * sizeof(T))); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { gpu::device_free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    CUDA_CHECK(gpu::memcpy(p_, host.data(), host.size() * sizeof(T), gpu::CopyKind::kHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    CUDA_CHECK(gpu::device_synchronize());
    CUDA_CHECK(gpu::memcpy(host.data(), p_, n_ * sizeof(T), gpu::CopyKind::kDeviceToHost));
    return host;
  }
  // Fills with NaN/garbage bytes, so an element the kernel does not write fails the test.
  void poison() { CUDA_CHECK(gpu::memset(p_, 0xFF, n_ * sizeof(T))); }

 private:
  T* p_ = nullptr;
  size_t n_;
};

struct ScheduleCase {
  gpu::Schedule schedule;
  uint64_t seed;
  gpu::CpAsyncLanding landing;
  std::string name() const {
    std::string s = gpu::schedule_name(schedule);
    if (schedule == gpu::Schedule::kShuffle || landing == gpu::CpAsyncLanding::kRandom)
      s.append(":").append(std::to_string(seed));
    return s.append("+").append(gpu::landing_name(landing));
  }
};
// Thread orders and cp.async landings that between them expose the races a kernel can have:
// ascending with copies landing at issue (a warp that runs ahead prefetches into a stage the
// others still read), descending with copies landing at the wait (a read before the wait or
// before the barrier after it sees poison), and two seeded shuffles with each group landing at
// a random synchronization point.
inline std::vector<ScheduleCase> all_schedules() {
  return {{gpu::Schedule::kAscending, 1, gpu::CpAsyncLanding::kEager},
          {gpu::Schedule::kDescending, 1, gpu::CpAsyncLanding::kLazy},
          {gpu::Schedule::kShuffle, 7, gpu::CpAsyncLanding::kRandom},
          {gpu::Schedule::kShuffle, 20261128, gpu::CpAsyncLanding::kRandom}};
}

// Restores the schedule in force when it was made.
class ScheduleGuard {
 public:
  ScheduleGuard()
      : s_(gpu::current_schedule()), seed_(gpu::current_schedule_seed()), landing_(gpu::current_cp_async_landing()) {}
  ~ScheduleGuard() { gpu::set_schedule(s_, seed_, landing_); }

 private:
  gpu::Schedule s_;
  uint64_t seed_;
  gpu::CpAsyncLanding landing_;
};

// Runs `run` (launches kernels, returns their output) under every schedule and returns the
// results, one per schedule, in all_schedules() order.
template <typename T>
std::vector<std::vector<T>> run_all_schedules(const std::function<std::vector<T>()>& run) {
  ScheduleGuard guard;
  std::vector<std::vector<T>> out;
  const ScheduleCase rerun{gpu::Schedule::kAscending, 1, gpu::CpAsyncLanding::kLazy};
  const auto cases = gpu::kEmulated ? all_schedules() : std::vector<ScheduleCase>{rerun, rerun};
  for (const ScheduleCase& c : cases) {
    gpu::set_schedule(c.schedule, c.seed, c.landing);
    out.push_back(run());
  }
  return out;
}

// Index of the first element whose bytes differ, or -1.
template <typename T>
int64_t first_bitwise_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  return -1;
}

// RINGTRAIN_TEST_UNDER_SANITIZER=1: the GPU run of scripts/sanitize, which looks for memory
// errors and undefined behaviour, not for order-dependent bits or numerical drift (the plain
// build runs every test in full): same_under_all_schedules runs its body once, under the
// schedule in force (RINGTRAIN_EMU_SCHEDULE), and loops that only add numerical evidence run
// fewer rounds (sanitized_count).
inline bool under_sanitizer() {
  const char* e = std::getenv("RINGTRAIN_TEST_UNDER_SANITIZER");
  return e && std::string(e) == "1";
}
// n rounds, or `sanitized` under the sanitizer run.
inline int sanitized_count(int n, int sanitized) { return under_sanitizer() ? sanitized : n; }

// Runs `run` under every schedule, asserts the results are bitwise identical and returns one.
// This is what catches a missing barrier or a read of unwritten shared memory: such a kernel
// computes different bits under different thread orders.
template <typename T>
std::vector<T> same_under_all_schedules(const std::function<std::vector<T>()>& run, const std::string& what) {
  if (gpu::kEmulated && under_sanitizer()) return run();
  const auto results = run_all_schedules<T>(run);
  const auto cases = all_schedules();
  for (size_t s = 1; s < results.size(); ++s) {
    const int64_t d = first_bitwise_difference(results[0], results[s]);
    EXPECT_EQ(d, -1) << what << ": result under schedule " << (gpu::kEmulated ? cases[s].name() : "rerun")
                     << " differs bitwise from " << cases[0].name() << " at element " << d;
  }
  return results[0];
}

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace ringtrain::test
