// The schedule the emulator runs kernels and deferred streams under: the thread order
// (ascending, descending, shuffle with a seed) and the cp.async landing (lazy, eager, random),
// from gpu::set_schedule or RINGTRAIN_EMU_SCHEDULE.
#include <cstdlib>
#include <string>

#include "src/core/error.h"
#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {
namespace emu {
namespace {
Schedule g_schedule = Schedule::kAscending;
uint64_t g_seed = 1;
CpAsyncLanding g_landing = CpAsyncLanding::kLazy;
bool g_schedule_from_env = false;
}  // namespace
}  // namespace emu

namespace {
void schedule_from_env() {
  if (emu::g_schedule_from_env) return;
  emu::g_schedule_from_env = true;
  const char* e = std::getenv("RINGTRAIN_EMU_SCHEDULE");
  if (!e) return;
  const std::string all = e;
  const size_t plus = all.find('+');
  const std::string s = all.substr(0, plus);
  const std::string landing = plus == std::string::npos ? "lazy" : all.substr(plus + 1);
  const size_t colon = s.find(':');
  const std::string order = s.substr(0, colon);
  if (colon != std::string::npos) emu::g_seed = std::strtoull(s.c_str() + colon + 1, nullptr, 10);
  if (order == "ascending") emu::g_schedule = Schedule::kAscending;
  else if (order == "descending") emu::g_schedule = Schedule::kDescending;
  else if (order == "shuffle") emu::g_schedule = Schedule::kShuffle;
  else
    ringtrain::input_error("RINGTRAIN_EMU_SCHEDULE=", all,
                           ": expected ascending, descending or shuffle, then :seed, then +lazy, +eager or +random");
  if (landing == "lazy") emu::g_landing = CpAsyncLanding::kLazy;
  else if (landing == "eager") emu::g_landing = CpAsyncLanding::kEager;
  else if (landing == "random") emu::g_landing = CpAsyncLanding::kRandom;
  else ringtrain::input_error("RINGTRAIN_EMU_SCHEDULE=", all, ": cp.async landing must be lazy, eager or random");
}
}  // namespace

void set_schedule(Schedule schedule, uint64_t seed, CpAsyncLanding landing) {
  emu::g_schedule_from_env = true;
  emu::g_schedule = schedule;
  emu::g_seed = seed;
  emu::g_landing = landing;
}
Schedule current_schedule() {
  schedule_from_env();
  return emu::g_schedule;
}
uint64_t current_schedule_seed() {
  schedule_from_env();
  return emu::g_seed;
}
CpAsyncLanding current_cp_async_landing() {
  schedule_from_env();
  return emu::g_landing;
}
std::string schedule_description() {
  std::string s = schedule_name(current_schedule());
  if (current_schedule() == Schedule::kShuffle || current_cp_async_landing() == CpAsyncLanding::kRandom)
    s.append(":").append(std::to_string(current_schedule_seed()));
  return s.append("+").append(landing_name(current_cp_async_landing()));
}

}  // namespace ringtrain::gpu
