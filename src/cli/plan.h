// `ringtrain plan` and the `--dry-run`: a job's memory per rank and bytes per group from its
// config alone (src/plan/memory.h, src/plan/comm.h), printed without an MPI world.
#pragma once

#include <string>

#include "src/cli/args.h"
#include "src/config/config.h"
#include "src/plan/gpu_kinds.h"

namespace ringtrain {

// `config` with parallel.dp set so that dp * cp * tp = gpus; an input error when cp * tp does
// not divide gpus.
Config config_for_gpus(const Config& config, int gpus);

// The layout, batch and memory breakdown of `config` on `kind`, whether it fits, and the bytes
// each rank sends per step in each mesh group.
std::string plan_text(const Config& config, const GpuKind& kind);

// ringtrain plan CONFIG --gpus N [--gpu KIND] [--set k=v]...
int run_plan(const CommandLine& cl);

}  // namespace ringtrain
