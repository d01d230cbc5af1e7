// `ringtrain plan` and the `--dry-run`: a job's memory per rank, bytes per group and step time
// from its config alone (src/plan), printed without an MPI world; `--search` ranks every
// layout that fits.
#pragma once

#include <string>

#include "src/cli/args.h"
#include "src/config/config.h"
#include "src/plan/gpu_kinds.h"
#include "src/plan/step_time.h"

namespace ringtrain {

// What a plan is made for: the GPU kind's figures (the command line may replace any), how many
// share a node, and the memory per rank (0: no limit, the host).
struct PlanTarget {
  GpuKind kind;
  Cluster cluster;
  double capacity = 0;
};

// The kind's own figures, 8 GPUs a node.
PlanTarget plan_target(const GpuKind& kind);

// `config` with parallel.dp set so that dp * cp * tp = gpus; an input error when cp * tp does
// not divide gpus.
Config config_for_gpus(const Config& config, int gpus);

// The layout, batch and memory breakdown of `config` on the target, whether it fits, the bytes
// each rank sends per step in each mesh group, and the step time.
std::string plan_text(const Config& config, const PlanTarget& target);

// ringtrain plan CONFIG --gpus N [--gpu KIND] [--set k=v]... [--max-context | --search [--json]]
int run_plan(const CommandLine& cl);

}  // namespace ringtrain
