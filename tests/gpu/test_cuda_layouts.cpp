// ctest-ranks: 2 4 8
// Every layout on the CUDA backend (the emulated device with emulated NCCL in CI) trains the
// same numbers as the CPU backend on the same layout and as one CPU rank: the loss of each of
// 3 steps and the global weights after them. Each communicator kind is covered: NCCL ordered
// against the compute stream, and staged MPI (device -> host -> MPI -> device). Catches a device
// buffer handed to a collective before the kernel that writes it finished (or read before the
// collective that fills it did), a count in bytes where elements are meant, a ring step whose
// K/V or dK/dV buffers are reused under an in-flight transfer, and any CUDA op that differs from
// its CPU version under tensor, context or data parallelism, also with packed documents, and
// ZeRO-1/2/3 over dp x cp (a unit buffer reused under its in-flight reduce-scatter or gather).
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "kernels/cuda/backend_cuda.h"
#include "layout_runs.h"

using namespace ringtrain;

namespace {

// eps 1e-6: see tests/gpu/test_cuda_step.cpp (AdamW's first steps on near-zero gradients).
constexpr const char* kBase = R"(
device: cpu
run: {seed: 7, threads: 1}
model: {vocab_size: 128, d_model: 64, n_layers: 2, n_heads: 8, n_kv_heads: 4, d_ff: 96}
train: {seq_len: 64, micro_batch: 2, grad_accum: 1, steps: 3, lr: 3.0e-3, warmup_steps: 1, grad_clip: 1.0, eps: 1.0e-6, eval_batches: 1}
data: {task: passkey, passkey_digits: 2}
log: {every: 100, tensorboard: false}
)";

}  // namespace

TEST(CudaLayouts, EveryLayoutEqualsCpuAndOneRank) {
  register_cuda_runtime();
  const int world = world_size();
  std::vector<std::vector<std::string>> layouts;
  auto add = [&](int dp, int cp, int tp, std::vector<std::string> extra = {}) {
    if (dp * cp * tp == world) layouts.push_back(test::layout(dp, cp, tp, 4, std::move(extra)));
  };
  add(1, 2, 1);
  add(1, 2, 1, {"parallel.cp_mode=ulysses", "parallel.ulysses_degree=2"});
  add(1, 1, 2, {"parallel.sequence_parallel=true"});
  add(2, 1, 1, {"parallel.zero1=true"});
  add(1, 2, 1, {"parallel.zero=2"});  // unit buffers reduce-scattered per micro-step on the device
  add(1, 2, 1, {"parallel.zero=3"});  // each layer gathered (prefetched) into reused device buffers
  add(1, 4, 1);
  add(1, 4, 1, {"parallel.cp_mode=ulysses", "parallel.ulysses_degree=4"});
  add(1, 4, 1, {"parallel.cp_mode=hybrid", "parallel.ulysses_degree=2"});
  add(1, 4, 1, {"parallel.zero=1"});
  add(2, 2, 1, {"parallel.zero=2"});
  add(1, 2, 2);
  add(2, 2, 2);
  // ZeRO over 4 and 8 ranks: pieces an eighth of a unit, gathers beside tp's collectives.
  add(2, 2, 2, {"parallel.sequence_parallel=true", "parallel.zero=3"});
  add(1, 8, 1, {"parallel.zero=2"});
  add(1, 8, 1, {"parallel.zero=3", "parallel.zero3_keep_for_backward=true"});
  ASSERT_FALSE(layouts.empty());

  const test::TrainedRun one_rank = test::train(kBase, MPI_COMM_SELF, {"train.micro_batch=2", "train.grad_accum=2"});
  for (const auto& o : layouts) {
    SCOPED_TRACE(test::layout_name(o));
    const test::TrainedRun cpu = test::train(kBase, MPI_COMM_WORLD, o);
    test::expect_same(cpu, one_rank, "cpu " + test::layout_name(o));
    for (const char* comm : {"nccl", "staged"}) {
      const test::TrainedRun dev =
          test::train(kBase, MPI_COMM_WORLD, test::with(o, {"device=cuda", std::string("parallel.device_comm=") + comm}));
      EXPECT_NE(dev.device.find(std::string(comm) == "nccl" ? "via NCCL" : "via staged MPI"), std::string::npos)
          << dev.device;  // never a silent CPU run
      test::expect_same(dev, cpu, std::string("cuda/") + comm + " vs cpu, " + test::layout_name(o));
      test::expect_same(dev, one_rank, std::string("cuda/") + comm + " vs one rank, " + test::layout_name(o));
    }
  }
}

// Packed documents (tests/mpi/test_layouts.cpp PackedDocumentsEqualOneRank, on the device):
// prompts of 16 to 48 tokens packed into 64, with and without a sliding window shorter than a
// document, 2 kv heads: ring at cp = world, Ulysses at degree 4 (beyond the kv heads: the
// device's gather_heads / sum_heads), hybrid 2 x 2, cp 2 x tp 2, dp 2 x cp 2. Catches the
// device's document ids or in-document positions sharded differently from the host's, a
// window or document mask the CUDA attention applies differently from the CPU one, and a kv
// head sent to two Ulysses ranks whose dK/dV comes back summed wrongly on the device. The
// communicator kinds are covered above, so each window runs on one of them, which halves the
// device time (the emulated device is the cost here).
// eps 1e-6: AdamW on the near-cancelling gradients packed prompts leave (tests/mpi/test_layouts.cpp).
TEST(CudaLayouts, PackedDocumentsEqualCpuAndOneRank) {
  register_cuda_runtime();
  const int world = world_size();
  for (const char* window : {"0", "20"}) {
    const std::vector<std::string> packed = {"data.packing=documents", "model.n_kv_heads=2", "train.eps=1e-6",
                                             std::string("model.sliding_window=") + window};
    std::vector<std::vector<std::string>> layouts;
    auto add = [&](int dp, int cp, int tp, std::vector<std::string> extra = {}) {
      if (dp * cp * tp == world) layouts.push_back(test::layout(dp, cp, tp, 4, test::with(std::move(extra), packed)));
    };
    add(1, world, 1);
    add(1, 4, 1, {"parallel.cp_mode=ulysses", "parallel.ulysses_degree=4"});
    add(1, 4, 1, {"parallel.cp_mode=hybrid", "parallel.ulysses_degree=2"});
    add(1, 2, 2);
    add(2, 2, 1);

    const char* comm = std::string(window) == "0" ? "nccl" : "staged";
    const test::TrainedRun one_rank =
        test::train(kBase, MPI_COMM_SELF, test::with({"train.micro_batch=2", "train.grad_accum=2"}, packed));
    for (const auto& o : layouts) {
      SCOPED_TRACE(test::layout_name(o));
      const test::TrainedRun cpu = test::train(kBase, MPI_COMM_WORLD, o);
      test::expect_same(cpu, one_rank, "cpu " + test::layout_name(o));
      const test::TrainedRun dev =
          test::train(kBase, MPI_COMM_WORLD, test::with(o, {"device=cuda", std::string("parallel.device_comm=") + comm}));
      EXPECT_NE(dev.device.find(std::string(comm) == "nccl" ? "via NCCL" : "via staged MPI"), std::string::npos)
          << dev.device;
      test::expect_same(dev, cpu, std::string("cuda/") + comm + " vs cpu, " + test::layout_name(o));
      test::expect_same(dev, one_rank, std::string("cuda/") + comm + " vs one rank, " + test::layout_name(o));
    }
  }
}
