// ctest-ranks: 4
// The memory plan (src/plan/memory.h) against real CPU steps: for layouts covering dp and cp
// with ZeRO 0 to 3, ring, Ulysses with duplicated kv heads, hybrid, tp with sequence parallelism
// and recompute, the plan's parameter counts equal what the model registers, and its memory per
// rank is within 2% of the peak of tensor storage the rank reaches in two training steps
// (host_bytes_peak: tensors only, not the process's libraries). Catches a buffer the plan forgets
// (or counts twice), a shard taken over the wrong group and a layout term in the wrong place.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/core/tensor.h"
#include "src/plan/memory.h"
#include "src/train/trainer.h"

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 5, threads: 1, out_dir: /tmp/ringtrain-test-plan-memory}
model: {vocab_size: 512, d_model: 128, n_layers: 3, n_heads: 8, n_kv_heads: 2, d_ff: 256}
train: {seq_len: 512, micro_batch: 2, grad_accum: 2, steps: 2, warmup_steps: 1, eval_batches: 1}
data: {task: passkey, passkey_digits: 2}
log: {every: 100, tensorboard: false}
)";

struct Case {
  std::string name;
  std::vector<std::string> overrides;
};

void expect_plan_matches(const Case& k) {
  const Config c = parse_config(kBase, "test_plan_memory", k.overrides);
  const MemoryPlan plan = plan_memory(c, /*on_gpu=*/false);
  const size_t before = host_bytes_in_use();
  reset_host_bytes_peak();
  double measured = 0;
  {
    Mesh mesh(MPI_COMM_WORLD, MeshShape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree});
    Trainer t(c, mesh);
    EXPECT_EQ(plan.params_local, t.model().params().used()) << k.name;
    EXPECT_EQ(plan.params_padded, t.model().params().size()) << k.name;
    t.step();
    t.step();
    measured = static_cast<double>(host_bytes_peak() - before);
  }
  double most = 0;
  MPI_Allreduce(&measured, &most, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  const double ratio = plan.total() / most;
  if (world_rank() == 0)
    std::printf("[ info ] %-28s plan %8.2f MiB, measured peak %8.2f MiB, plan/measured %.3f\n", k.name.c_str(),
                plan.total() / 1048576.0, most / 1048576.0, ratio);
  EXPECT_NEAR(ratio, 1.0, 0.02) << k.name << ": plan " << plan.total() << " bytes, measured " << most;
}

TEST(PlanMemory, WithinTenPercentOfMeasuredPeak) {
  ASSERT_EQ(world_size(), 4);
  const std::vector<Case> cases = {
      {"dp4", {"parallel.dp=4"}},
      {"dp4 zero1", {"parallel.dp=4", "parallel.zero1=true"}},
      {"cp4 zero1", {"parallel.cp=4", "parallel.zero=1"}},
      {"cp4 zero2", {"parallel.cp=4", "parallel.zero=2"}},
      {"dp2 cp2 zero2", {"parallel.dp=2", "parallel.cp=2", "parallel.zero=2"}},
      {"cp4 zero3", {"parallel.cp=4", "parallel.zero=3"}},
      {"cp4 zero3 keep", {"parallel.cp=4", "parallel.zero=3", "parallel.zero3_keep_for_backward=true"}},
      {"dp2 tp2 sp zero3", {"parallel.dp=2", "parallel.tp=2", "parallel.sequence_parallel=true", "parallel.zero=3"}},
      {"cp2 tp2 sp zero2", {"parallel.cp=2", "parallel.tp=2", "parallel.sequence_parallel=true", "parallel.zero=2"}},
      {"cp4 ring", {"parallel.cp=4"}},
      {"cp4 ring recompute", {"parallel.cp=4", "train.recompute=true"}},
      {"cp4 ulysses (kv duplicated)", {"parallel.cp=4", "parallel.cp_mode=ulysses"}},
      {"cp4 hybrid 2x2", {"parallel.cp=4", "parallel.cp_mode=hybrid", "parallel.ulysses_degree=2"}},
      {"cp2 tp2 sp", {"parallel.cp=2", "parallel.tp=2", "parallel.sequence_parallel=true"}},
      {"dp2 tp2 zero1 recompute",
       {"parallel.dp=2", "parallel.tp=2", "parallel.zero1=true", "train.recompute=true"}},
  };
  for (const Case& k : cases) expect_plan_matches(k);
}

}  // namespace
