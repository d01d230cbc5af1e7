// Names of the GPU layer's schedule and architecture values (both builds), for messages.
#include "src/device/gpu.h"

namespace ringtrain::gpu {

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kAscending: return "ascending";
    case Schedule::kDescending: return "descending";
    case Schedule::kShuffle: return "shuffle";
  }
  return "?";
}
const char* landing_name(CpAsyncLanding l) {
  switch (l) {
    case CpAsyncLanding::kLazy: return "lazy";
    case CpAsyncLanding::kEager: return "eager";
    case CpAsyncLanding::kRandom: return "random";
  }
  return "?";
}
const char* arch_name(Arch a) { return a == Arch::kSm80 ? "sm_80" : "sm_90a"; }

}  // namespace ringtrain::gpu
