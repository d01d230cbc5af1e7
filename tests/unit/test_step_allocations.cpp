// A steady-state training step allocates no working memory: the step's temporaries (model
// gradient buffers, ring K/V blocks and dK/dV accumulators, Ulysses all-to-all buffers,
// attention tile ranges and per-thread dQ partials, RoPE tables) live in reusable workspaces
// sized on the first step. Catches a std::vector temporary (re)introduced in the step's path
// (layer forward/backward, ring attention, attention kernels), a workspace keyed so that it is
// rebuilt every step, and a buffer that shrinks and regrows between forward and backward.
//
// The workspaces count every growth (kernels/cpu/workspace.h); steps 2 and 3 must count none.
// The test also counts every global operator new of step 3 (the whole Trainer::step: data
// loader, trainer bookkeeping, model, attention, optimizer; MPI and oneDNN allocate with malloc,
// not counted) and asserts there is none. Catches a per-step temporary (a Sample, a batch
// vector, a std::function capture too large for its in-place buffer, a scratch vector in the
// sampler, a vector of ring positions) reintroduced anywhere in the step.
// RT_ALLOC_TRACE=1 prints a backtrace for every counted allocation of step 3.
#include <gtest/gtest.h>
#include <mpi.h>

#include <execinfo.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/workspace.h"
#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/train/trainer.h"

namespace {
std::atomic<long> g_news{0};
// RT_ALLOC_TRACE=1: print a backtrace of every operator new in the measured step (stderr).
std::atomic<bool> g_trace{false};
}  // namespace

void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (g_trace.load(std::memory_order_relaxed)) {
    void* frames[24];
    const int k = backtrace(frames, 24);
    std::fprintf(stderr, "--- operator new(%zu)\n", n);
    backtrace_symbols_fd(frames, k, 2);
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// noinline: inlined into a caller, GCC pairs this free() with the replaced operator new above
// and warns of a mismatched deallocation (-Wmismatched-new-delete).
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 11, threads: 1}
model: {vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 96}
train: {seq_len: 256, micro_batch: 2, grad_accum: 2, steps: 3, lr: 1.0e-3, warmup_steps: 1, grad_clip: 1.0, eval_batches: 1}
data: {task: passkey, passkey_digits: 2}
log: {every: 100, tensorboard: false}
)";

void expect_steady(const std::vector<std::string>& overrides, int attention_threads) {
  std::vector<std::string> o = overrides;
  o.push_back("run.out_dir=/tmp/ringtrain-test-step-allocations");
  const Config c = parse_config(kBase, "test_step_allocations", o);
  Mesh mesh(MPI_COMM_SELF, MeshShape{1, 1, 1, 1});
  const uint64_t start = ws::workspace_growth_count();
  Trainer t(c, mesh);
  attention_set_cpu_threads(attention_threads);  // after the trainer, which sets run.threads
  t.step();
  const uint64_t after_first = ws::workspace_growth_count();
  t.step();
  const uint64_t after_second = ws::workspace_growth_count();
  const long news_before = g_news.load();
  g_trace = std::getenv("RT_ALLOC_TRACE") != nullptr;
  t.step();
  g_trace = false;
  const long news_third = g_news.load() - news_before;
  const uint64_t after_third = ws::workspace_growth_count();
  // Workspaces are per thread and outlive a trainer: only the first test in the process is
  // sure to grow any, so the wiring check is "something grew since the process started".
  EXPECT_GT(after_first, 0u) << "no workspace ever grew (is the counter wired?)";
  EXPECT_EQ(after_second, after_first) << "step 2 grew a workspace";
  EXPECT_EQ(after_third, after_second) << "step 3 grew a workspace";
  std::printf("[ info ] workspace growths: first step %llu, steps 2-3 %llu; operator new calls in step 3 (whole step): %ld\n",
              static_cast<unsigned long long>(after_first - start),
              static_cast<unsigned long long>(after_third - after_first), news_third);
  EXPECT_EQ(news_third, 0) << "step 3 made " << news_third << " operator new calls; rerun with "
                               "RT_ALLOC_TRACE=1 for their backtraces";
  attention_set_cpu_threads(1);
}

TEST(StepAllocations, SteadyStateStepGrowsNoWorkspace) { expect_steady({}, 1); }

TEST(StepAllocations, RecomputeStepGrowsNoWorkspace) { expect_steady({"train.recompute=true"}, 1); }

// Two attention threads: the per-thread dQ partials and every thread's tile scratch.
TEST(StepAllocations, ThreadedAttentionGrowsNoWorkspace) { expect_steady({}, 2); }

}  // namespace
