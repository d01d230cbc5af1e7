#include "src/plan/unit_pipeline.h"

#include <algorithm>

namespace ringtrain {

double unit_pass_s(const std::vector<UnitWork>& units, bool async_progress) {
  if (units.empty()) return 0.0;
  if (!async_progress) {
    double t = 0;
    for (const UnitWork& u : units) t += u.gather_s + u.compute_s + u.reduce_s;
    return t;
  }
  double channel = units[0].gather_s;  // when the channel is free; the first gather at 0
  double landed = channel;             // when the next unit's weights are in
  double t = 0;                        // the compute stream
  for (size_t i = 0; i < units.size(); ++i) {
    const double start = std::max(t, landed);
    if (i + 1 < units.size()) {  // the prefetch, issued as unit i starts
      channel = std::max(channel, start) + units[i + 1].gather_s;
      landed = channel;
    }
    t = start + units[i].compute_s;
    if (units[i].reduce_s > 0) channel = std::max(channel, t) + units[i].reduce_s;
  }
  return std::max(t, channel);
}

}  // namespace ringtrain
