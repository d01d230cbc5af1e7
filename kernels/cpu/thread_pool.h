// The CPU kernels' threads: one process-wide pool that the attention tiles and the split GEMMs
// share (OpenBLAS runs single-threaded inside them), whose idle threads sleep.
//
// Why not OpenMP: libgomp's idle threads spin for a while after every parallel region, and its
// wait policy can only be set from the environment before the program starts. Between the
// step's parallel stretches (attention, large GEMMs) come serial ones (norms, RoPE, AdamW): a
// spinning thread then takes a core from the thread doing the work whenever the cores are
// shared (with the rank's other threads, another rank, or other jobs). Measured on the 2-core
// development VM while it was loaded (load average ~20), one 2-thread training step of the
// s256 model (scripts/bench-cpu's shape, bench_steps_step_time, alternating): 0.36-0.38 CPU s
// and 1.6-2.4 s median wall with OpenMP beside OpenBLAS's own pool, 0.24-0.27 CPU s and
// 0.8-1.2 s with this pool.
#pragma once

#include <cstdint>
#include <atomic>

namespace ringtrain::cpu {

// A non-owning reference to a callable taking the thread index: no allocation per call.
class ThreadBody {
 public:
  template <class F>
  ThreadBody(F& f) : obj_(&f), call_([](void* o, int tid) { (*static_cast<F*>(o))(tid); }) {}  // NOLINT
  void operator()(int tid) const { call_(obj_, tid); }

 private:
  void* obj_;
  void (*call_)(void*, int);
};

// Runs body(tid) once on each of `threads` threads, tid 0 being the caller, and returns when
// all have returned. Called from inside a body, or while another thread's run is in progress,
// it runs the bodies one after another on the calling thread (same results: callers split work
// by tid or by a shared counter, never by timing).
void parallel_run(int threads, ThreadBody body);

// f(lo, hi) over [0, n) cut into at most `threads` contiguous ranges of at least min_part
// elements (each a multiple of 64, so ranges of floats start on cache lines as the array does),
// on the pool; on the calling thread alone when n is under 2 min_part. For elementwise passes:
// every element is computed the same way whatever the cut.
template <class F>
void parallel_ranges(int threads, int64_t n, int64_t min_part, F&& f) {
  int64_t parts = n / (min_part > 0 ? min_part : 1);
  parts = parts < threads ? parts : threads;
  if (parts <= 1) {
    if (n > 0) f(int64_t{0}, n);
    return;
  }
  const int64_t share = ((n + parts - 1) / parts + 63) / 64 * 64;
  auto body = [&](int p) {
    const int64_t lo = p * share, hi = lo + share < n ? lo + share : n;
    if (lo < hi) f(lo, hi);
  };
  parallel_run(static_cast<int>(parts), body);
}

// Items [0, n) handed out one at a time to whichever thread asks next (dynamic scheduling).
class WorkQueue {
 public:
  explicit WorkQueue(int64_t n) : n_(n) {}
  bool next(int64_t& item) {
    item = next_.fetch_add(1, std::memory_order_relaxed);
    return item < n_;
  }

 private:
  int64_t n_;
  std::atomic<int64_t> next_{0};
};

}  // namespace ringtrain::cpu
