// ctest-ranks: 2
// ZeRO's collectives overlap compute: in the emulated device's trace of a training step on the
// CUDA backend (NCCL, cp 2), every ZeRO-3 all-gather but the first (the embedding's, which the
// step starts with) is issued on the dp x cp communication stream before kernels that the
// compute stream runs before waiting for it: the next unit's weights arrive behind the current
// unit's compute. Likewise every ZeRO-2 reduce-scatter of a layer's gradients but the last
// (the embedding's, the backward's end) is waited for only after kernels of the units below.
// Catches a prefetch that is issued after the layer it should hide behind, or waited for at
// once (a blocking gather in disguise), and a gradient reduction waited for where it is issued.
// In bf16, ZeRO-3 gathers every unit but the embedding as bf16, and the bytes handed to NCCL
// are the plan's (src/plan/comm.h): catches a unit gathered in fp32 after all, or bytes the
// plan does not count.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/backend_cuda.h"
#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/device/nccl_communicator.h"
#include "src/plan/comm.h"
#include "src/train/trainer.h"
#include "stream_trace.h"

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cuda
run: {seed: 3, threads: 1, out_dir: /tmp/ringtrain-test-zero-overlap}
model: {vocab_size: 128, d_model: 64, n_layers: 3, n_heads: 4, n_kv_heads: 4, d_ff: 96}
parallel: {cp: 2, device_comm: nccl}
train: {seq_len: 64, micro_batch: 1, grad_accum: 1, steps: 2, warmup_steps: 1, eval_batches: 1}
data: {task: passkey, passkey_digits: 2}
log: {every: 100, tensorboard: false}
)";

// For each entry of `issued` (indices on the comm stream) but those skipped: the compute stream
// launches at least one kernel between the issue and its wait for the operation.
void expect_overlapped(const test::Trace& t, int comm, int compute, const std::vector<int>& issued, size_t skip_first,
                       size_t skip_last, const std::string& what) {
  ASSERT_GT(issued.size(), skip_first + skip_last) << t.dump();
  for (size_t i = skip_first; i + skip_last < issued.size(); ++i) {
    const int at = issued[i], wait = t.wait_for_comm_after(comm, compute, at);
    ASSERT_GT(wait, at) << what << " " << i << ": no wait on the compute stream\n" << t.dump();
    int kernels = 0;
    for (int j = at + 1; j < wait; ++j)
      if (t.entries[static_cast<size_t>(j)].stream_id == compute &&
          (t.entries[static_cast<size_t>(j)].what == "gemm" || t.entries[static_cast<size_t>(j)].what.rfind("launch ", 0) == 0))
        ++kernels;
    EXPECT_GT(kernels, 0) << what << " " << i << " is waited for before any kernel ran behind it\n" << t.dump();
  }
}

}  // namespace

TEST(ZeroOverlap, CollectivesOverlapCompute) {
  if (!gpu::kEmulated) GTEST_SKIP() << "the trace is recorded on the emulated device (on a GPU: nsys)";
  register_cuda_runtime();
  for (const std::string zero : {"2", "3"}) {
    SCOPED_TRACE("zero " + zero);
    const Config c = parse_config(kBase, "test_zero_overlap", {"parallel.zero=" + zero});
    Mesh mesh(MPI_COMM_WORLD, MeshShape{1, 2, 1, 1});
    Trainer t(c, mesh);
    const int comm = gpu::stream_id(nccl_communicator_stream(*t.compute().groups().dp_cp));
    const int compute = gpu::stream_id(cuda_compute_stream(t.compute().backend()));
    t.step();  // first step: buffers sized, nothing left to allocate
    gpu::trace_start();
    t.step();
    t.compute().backend().synchronize();
    const test::Trace trace{gpu::trace_stop()};
    // 5 units: the embedding, 3 layers, the head.
    const std::vector<int> scatters = trace.find(comm, "nccl reduce_scatter");
    EXPECT_EQ(scatters.size(), 5u) << trace.dump();
    expect_overlapped(trace, comm, compute, scatters, 0, 1, "reduce-scatter");
    if (zero == "3") {
      // Forward: every unit; backward: the layers again (the head stays from the forward).
      const std::vector<int> gathers = trace.find(comm, "nccl all_gather");
      EXPECT_EQ(gathers.size(), 8u) << trace.dump();
      expect_overlapped(trace, comm, compute, gathers, 1, 0, "all-gather");
    }
  }
}

TEST(ZeroOverlap, Bf16GathersMoveHalfTheBytesAsPlanned) {
  if (!gpu::kEmulated) GTEST_SKIP() << "the trace is recorded on the emulated device (on a GPU: nsys)";
  register_cuda_runtime();
  for (const std::string keep : {"false", "true"}) {
    SCOPED_TRACE("zero3_keep_for_backward " + keep);
    const Config c = parse_config(kBase, "test_zero_overlap",
                                  {"parallel.zero=3", "train.precision=bf16", "parallel.zero3_keep_for_backward=" + keep});
    Mesh mesh(MPI_COMM_WORLD, MeshShape{1, 2, 1, 1});
    Trainer t(c, mesh);
    const int comm = gpu::stream_id(nccl_communicator_stream(*t.compute().groups().dp_cp));
    t.step();
    gpu::trace_start();
    t.step();
    t.compute().backend().synchronize();
    const test::Trace trace{gpu::trace_stop()};
    // Forward: the embedding (fp32: the lookup reads it so), 3 layers and the head; backward:
    // the layers again unless kept.
    const std::vector<int> gathers = trace.find(comm, "nccl all_gather");
    ASSERT_EQ(gathers.size(), keep == "true" ? 5u : 8u) << trace.dump();
    for (size_t i = 0; i < gathers.size(); ++i)
      EXPECT_NE(trace.entries[static_cast<size_t>(gathers[i])].what.find(i == 0 ? " f32 " : " bf16 "), std::string::npos)
          << "gather " << i << "\n" << trace.dump();
    // The RMSNorm weights, summed whole once per step.
    EXPECT_EQ(trace.find(comm, "nccl all_reduce f32").size(), 1u) << trace.dump();
    double bytes = 0;
    for (int i : trace.find(comm, "nccl ")) {
      const std::string& w = trace.entries[static_cast<size_t>(i)].what;
      bytes += std::atof(w.substr(w.rfind(' ', w.size() - 3) + 1).c_str());
    }
    // The plan's dp x cp bytes include the token count, the loss and the gradient norm's sums
    // (f64: 32 bytes), which travel over the mesh's host communicator.
    EXPECT_EQ(bytes + 32, plan_comm_bytes(c, /*on_gpu=*/true).at("dp_cp")) << trace.dump();
  }
}
