#include "kernels/cpu/workspace.h"

#include <atomic>

namespace ringtrain::ws {
namespace {
std::atomic<uint64_t> g_growths{0};
}  // namespace

uint64_t workspace_growth_count() { return g_growths.load(std::memory_order_relaxed); }
void note_workspace_growth() { g_growths.fetch_add(1, std::memory_order_relaxed); }

}  // namespace ringtrain::ws
