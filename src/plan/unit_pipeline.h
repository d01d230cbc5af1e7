// The timeline of one pass over ZeRO-3's units (a forward or a backward), as the optimizer
// issues its collectives (src/train/optimizer.h): one communication channel that runs its
// transfers in issue order, and the compute stream.
//   - unit i's weights are gathered before it computes; the gather of unit i + 1 is issued when
//     unit i starts (the prefetch), so it hides behind unit i's compute only: a gather longer
//     than the unit before it delays the next unit, and the pass's first gather (issued when
//     the pass starts) hides behind nothing;
//   - a unit's gradients are reduce-scattered when its compute ends, queued on the same channel
//     (behind the prefetches issued before it) and waited for at the end of the pass;
//   - without asynchronous progress (the host's MPI) a transfer moves only while the rank waits
//     for it: every gather and reduce-scatter is on the critical path.
// Each transfer carries its own start-up cost (the caller's per-unit durations include the
// latency of each message), so many small units pay many latencies.
#pragma once

#include <vector>

namespace ringtrain {

struct UnitWork {
  double gather_s = 0;   // the unit's weight gather (0: already held)
  double compute_s = 0;  // the unit's kernels
  double reduce_s = 0;   // the reduce-scatter of its gradients after it (0: none)
};

// Seconds from the pass's start until its last kernel and its last transfer have finished.
double unit_pass_s(const std::vector<UnitWork>& units, bool async_progress);

}  // namespace ringtrain
