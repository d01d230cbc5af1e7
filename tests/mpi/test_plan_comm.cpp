// ctest-ranks: 4
// The plan's bytes per group (src/plan/comm.h) equal, exactly, what the ranks hand to MPI in
// real CPU steps, counted at the MPI profiling interface (bench/steps/pmpi_counter.h, the
// counter scripts/bench-layouts uses), on every rank and in every group, for layouts covering
// tp with and without sequence parallelism, ring, Ulysses with duplicated kv heads, hybrid,
// ZeRO-1, 2 (its reduce-scatters per micro-batch) and 3 (its gathers per micro-batch), recompute and gradient accumulation. Catches a collective added to the step (or one
// removed) without the plan knowing, a hop count off by one, kv heads sent at the wrong width.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/steps/pmpi_counter.h"
#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/plan/comm.h"
#include "src/train/trainer.h"

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 3, threads: 1, out_dir: /tmp/ringtrain-test-plan-comm}
model: {vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 8, n_kv_heads: 2, d_ff: 128}
train: {seq_len: 128, micro_batch: 2, grad_accum: 2, steps: 2, warmup_steps: 1, eval_batches: 1}
data: {task: passkey, passkey_digits: 2}
log: {every: 100, tensorboard: false}
)";

void expect_bytes_match(const std::string& name, const std::vector<std::string>& overrides) {
  const Config c = parse_config(kBase, "test_plan_comm", overrides);
  const std::map<std::string, double> plan = plan_comm_bytes(c, /*on_gpu=*/false);
  Mesh mesh(MPI_COMM_WORLD, MeshShape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree});
  bench::pmpi_forget_names();  // the previous case's mesh is gone
  bench::pmpi_name_mesh(mesh);
  Trainer t(c, mesh);
  t.step();  // the first step sizes buffers; the second is measured
  bench::pmpi_reset();
  bench::pmpi_set_counting(true);
  t.step();
  bench::pmpi_set_counting(false);
  std::map<std::string, double> measured;
  for (const auto& [group, traffic] : bench::pmpi_traffic())
    if (traffic.bytes > 0) measured[group] = static_cast<double>(traffic.bytes);
  EXPECT_EQ(measured, plan) << name << " (rank " << world_rank() << ")";
  if (world_rank() == 0) {
    std::printf("[ info ] %-30s", name.c_str());
    for (const auto& [group, b] : plan) std::printf(" %s %.0f", group.c_str(), b);
    std::printf("\n");
  }
}

TEST(PlanComm, BytesPerGroupEqualMeasured) {
  ASSERT_EQ(world_size(), 4);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"dp4", {"parallel.dp=4"}},
      {"dp2 cp2 zero1", {"parallel.dp=2", "parallel.cp=2", "parallel.zero1=true"}},
      {"cp4 ring recompute", {"parallel.cp=4", "train.recompute=true"}},
      {"cp4 ulysses (kv duplicated)", {"parallel.cp=4", "parallel.cp_mode=ulysses"}},
      {"cp4 ulysses recompute", {"parallel.cp=4", "parallel.cp_mode=ulysses", "train.recompute=true"}},
      {"cp4 hybrid 2x2", {"parallel.cp=4", "parallel.cp_mode=hybrid", "parallel.ulysses_degree=2"}},
      {"dp2 tp2", {"parallel.dp=2", "parallel.tp=2"}},
      {"cp2 tp2 sp recompute",
       {"parallel.cp=2", "parallel.tp=2", "parallel.sequence_parallel=true", "train.recompute=true"}},
      {"dp2 tp2 sp zero1", {"parallel.dp=2", "parallel.tp=2", "parallel.sequence_parallel=true", "parallel.zero1=true"}},
      {"cp4 zero2", {"parallel.cp=4", "parallel.zero=2"}},
      {"cp4 zero3", {"parallel.cp=4", "parallel.zero=3"}},
      {"dp2 cp2 zero3 keep", {"parallel.dp=2", "parallel.cp=2", "parallel.zero=3", "parallel.zero3_keep_for_backward=true"}},
      {"cp2 tp2 sp zero2", {"parallel.cp=2", "parallel.tp=2", "parallel.sequence_parallel=true", "parallel.zero=2"}},
  };
  for (const auto& [name, overrides] : cases) expect_bytes_match(name, overrides);
}

}  // namespace
