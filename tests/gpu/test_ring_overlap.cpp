// ctest-ranks: 2 4
// The ring overlaps communication with compute: in the emulated device's trace of ring
// attention on the CUDA backend with the NCCL communicator, every step's transfer of the next
// K/V block (and, backward, of the travelling dK/dV sums) is issued on the communication
// stream BEFORE that step's attention kernel on the compute stream, and the compute stream
// waits for it only AFTER that kernel. Catches a ring that waits before computing (no overlap),
// one that posts the next block after the kernel, and one that never waits (a race the
// layout tests would see only by luck).
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "gpu_test.h"
#include "stream_trace.h"
#include "kernels/cuda/backend_cuda.h"
#include "parallel/context_attention.h"
#include "parallel/zigzag.h"
#include "src/core/process.h"
#include "src/device/nccl_communicator.h"

using namespace ringtrain;

using test::Trace;

namespace {

// For each of the first `n` kernels named `kernel`: the transfer posted for that step (the
// step-th receive) precedes it, and the compute stream's wait on that transfer follows it.
void expect_overlap(const Trace& t, int comm, int compute, const std::string& kernel, int n) {
  const std::vector<int> recvs = t.find(comm, "nccl recv");
  const std::vector<int> kernels = t.find(compute, kernel);
  ASSERT_GE(static_cast<int>(recvs.size()), n) << t.dump();
  ASSERT_GE(static_cast<int>(kernels.size()), n) << t.dump();
  for (int step = 0; step < n; ++step) {
    const int recv = recvs[static_cast<size_t>(step)], k = kernels[static_cast<size_t>(step)];
    EXPECT_LT(recv, k) << "step " << step << ": the next block's receive is posted before the kernel\n" << t.dump();
    const int wait = t.wait_for_comm_after(comm, compute, recv);
    EXPECT_GT(wait, k) << "step " << step << ": the compute stream waits for the transfer after the kernel\n"
                       << t.dump();
  }
}

}  // namespace

TEST(RingOverlap, TransfersOverlapAttentionKernels) {
  if (!gpu::kEmulated) GTEST_SKIP() << "the trace is recorded on the emulated device (on a GPU: nsys)";
  const int cp = world_size();
  auto be = make_cuda_backend(Precision::kF32, 0);
  auto ring = make_nccl_communicator(MPI_COMM_WORLD, nullptr, cuda_compute_stream(*be));
  const int comm_stream = gpu::stream_id(nccl_communicator_stream(*ring));
  const int compute_stream = gpu::stream_id(cuda_compute_stream(*be));

  const int b = 1, s = 16 * cp, h = 2, h_kv = 1, d = 16;
  const Zigzag zz{s, cp};
  ContextAttention ctx;
  ctx.ring = ring.get();
  for (int m = 0; m < cp; ++m) ctx.member_positions.push_back(zz.positions(m));
  ctx.causal = false;  // every block is computed: one attention kernel per ring step
  context_attention_prepare(ctx, *be);
  const int sl = zz.local_len();
  const int64_t nq = static_cast<int64_t>(b) * sl * h * d, nk = static_cast<int64_t>(b) * sl * h_kv * d;
  auto upload = [&](int64_t n, uint64_t seed) {
    Tensor t = be->alloc(n);
    const auto host = test::random_floats(static_cast<size_t>(n), seed + static_cast<uint64_t>(world_rank()));
    be->upload(t.raw(), host.data(), host.size() * sizeof(float));
    return t;
  };
  Tensor q = upload(nq, 1), k = upload(nk, 2), v = upload(nk, 3), dout = upload(nq, 4);
  Tensor out = be->alloc(nq), dq = be->alloc(nq), dk = be->alloc(nk), dv = be->alloc(nk);
  const LocalAttentionShape shape{b, sl, h, h_kv, d};
  ContextAttentionSaved saved;

  gpu::trace_start();
  context_attention_forward(ctx, shape, q.f32(), k.f32(), v.f32(), out.f32(), &saved);
  be->synchronize();
  const Trace fwd{gpu::trace_stop()};
  expect_overlap(fwd, comm_stream, compute_stream, "attention_f32_forward_kernel", cp - 1);

  gpu::trace_start();
  context_attention_backward(ctx, shape, q.f32(), k.f32(), v.f32(), out.f32(), dout.f32(), saved, dq.f32(), dk.f32(),
                             dv.f32());
  be->synchronize();
  const Trace bwd{gpu::trace_stop()};
  // Backward steps post the next K/V block and (from step 1) the dK/dV sums: one exchange per
  // step, whose receives are counted from the step's first.
  const std::vector<int> kernels = bwd.find(compute_stream, "attention_f32_dkdv_kernel");
  ASSERT_EQ(static_cast<int>(kernels.size()), cp) << bwd.dump();
  for (int step = 0; step + 1 < cp; ++step) {
    const int k_idx = kernels[static_cast<size_t>(step)];
    int recv = -1;  // the last receive posted before this step's kernel
    for (int i : bwd.find(comm_stream, "nccl recv"))
      if (i < k_idx) recv = i;
    ASSERT_GE(recv, 0) << bwd.dump();
    if (step > 0) {
      EXPECT_GT(recv, kernels[static_cast<size_t>(step - 1)]) << "step " << step << "\n" << bwd.dump();
    }
    EXPECT_GT(bwd.wait_for_comm_after(comm_stream, compute_stream, recv), k_idx) << "step " << step << "\n"
                                                                                << bwd.dump();
  }
}
