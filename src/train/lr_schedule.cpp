#include "src/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace ringtrain {

double learning_rate(const TrainConfig& t, int step) {
  if (t.warmup_steps > 0 && step < t.warmup_steps) return t.lr * (step + 1) / t.warmup_steps;
  if (t.schedule == LrSchedule::kConstant) return t.lr;
  const int span = std::max(1, t.steps - 1 - t.warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - t.warmup_steps) / span, 0.0, 1.0);
  return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace ringtrain
