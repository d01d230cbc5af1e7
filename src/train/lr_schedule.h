// Learning rate of step s (0-based): linear warmup from lr/warmup to lr over warmup_steps,
// then cosine decay to min_lr at the last step (or constant lr).
#pragma once

#include "src/config/config.h"

namespace ringtrain {

double learning_rate(const TrainConfig& t, int step);

}  // namespace ringtrain
