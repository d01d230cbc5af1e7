// `ringtrain train CONFIG --dry-run`: the layout and its cost, without training.
#pragma once

#include "src/config/config.h"

namespace ringtrain {

class Mesh;

// Collective. Rank 0 prints which global rank holds which dp/cp/tp coordinate, its host, local
// rank and GPU, the parameter counts, and an estimate of the memory per rank.
void print_dry_run(const Config& config, Mesh& mesh);

}  // namespace ringtrain
