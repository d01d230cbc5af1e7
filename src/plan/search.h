// Every layout of a model, length and GPU count, planned: memory per rank (memory.h) and step
// time (step_time.h), those that fit ranked by predicted tokens/s.
//
// The search keeps what the config trains: the model, train.seq_len and the sequences per
// optimizer step (dp x micro_batch x grad_accum of the config's own layout on the GPUs:
// dp = gpus / (cp x tp), or parallel.dp when cp x tp does not divide them). It varies
// (dp, cp, tp, cp_mode, ulysses_degree, sequence_parallel, zero1, recompute, micro_batch),
// grad_accum following from the batch, and keeps the combinations the config's own checks
// accept (tp divides the heads, kv heads, vocabulary and MLP; the zigzag's 2 cp chunks divide
// the length; the Ulysses degree divides the heads per tp rank; ...).
#pragma once

#include <string>
#include <vector>

#include "src/config/config.h"
#include "src/plan/memory.h"
#include "src/plan/step_time.h"

namespace ringtrain {

struct PlannedLayout {
  Config config;
  MemoryPlan memory;
  StepTime time;
};

struct LayoutSearch {
  int64_t sequences_per_step = 0;
  int valid = 0;                         // layouts the config's checks accept
  std::vector<PlannedLayout> fits;       // those within the capacity, fastest first
  PlannedLayout smallest;                // the least memory per rank of all valid layouts
};

// `capacity`: bytes per rank; 0 = no limit (the host). Input errors: no valid layout of
// `gpus` (saying what constrains it), nothing within the capacity (the smallest memory found,
// its layout, and the capacity it would need).
LayoutSearch search_layouts(const Config& config, int gpus, const GpuKind& kind, const Cluster& cluster,
                            double capacity);

// "dp 2 x cp 4 (hybrid, ulysses 2) x tp 2, sp, zero1, recompute, micro_batch 1 x grad_accum 4"
std::string layout_name(const Config& config);

}  // namespace ringtrain
