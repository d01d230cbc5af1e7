// `ringtrain train CONFIG --dry-run`: the layout and its cost, without training.
#pragma once

#include "src/config/config.h"

namespace ringtrain {

class Mesh;

// Collective. Rank 0 prints which global rank holds which dp/cp/tp coordinate, its host, local
// rank and GPU, then the plan of the layout (src/cli/plan.h), after checking that the plan
// counts the parameters the model registers.
void print_dry_run(const Config& config, Mesh& mesh);
// One process, any layout: the plan alone (no mesh, no hosts).
void print_dry_run_plan(const Config& config);

}  // namespace ringtrain
