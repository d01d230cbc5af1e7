// cp.async in the emulated device: copies issued by a CUDA thread, grouped at its commits,
// landing where the schedule's landing says (at issue, at a synchronization point between the
// commit and the wait, or at the wait that retires the group).
#include <cstring>
#include <string>
#include <utility>

#include "src/device/emu/emu_internal.h"
#include "src/device/kernel.h"

namespace ringtrain::gpu::emu {
namespace {
void land(std::vector<CpCopy>& copies) {
  for (const CpCopy& c : copies) {
    std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
    std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, static_cast<size_t>(c.bytes - c.src_bytes));
  }
  copies.clear();
}
}  // namespace

void cp_async_sync_point(CpAsyncState& s) {
  for (CpGroup& g : s.groups)
    if (g.countdown > 0 && --g.countdown == 0) land(g.copies);
}

// ---- cp.async.ca/cg.shared.global, cp.async.commit_group, cp.async.wait_group ----
// PTX ISA, section "Data Movement and Conversion Instructions: cp.async" (and cp.async.wait_group):
// the copy is performed asynchronously; there is no ordering guarantee between cp.async
// operations unless cp.async.wait_group (or mbarrier) is used, and wait_group N completes all
// but the N most recent groups. So a copy may land at issue or any moment up to the wait; the
// schedule's landing picks one: at issue (eager: a prefetch into a stage other warps still
// read clobbers it), at the wait (lazy: a read before the wait, or from another thread before
// the barrier after it, sees poison), or per group at a random one of the issuing thread's
// synchronization points in between. ----
void cp_async(void* smem_dst, const void* gmem_src, int bytes, int src_bytes) {
  if (src_bytes < 0 || src_bytes > bytes) kernel_fault("cp.async: src-size " + std::to_string(src_bytes) + " outside [0, " + std::to_string(bytes) + "]");
  if (reinterpret_cast<uintptr_t>(smem_dst) % static_cast<uintptr_t>(bytes) != 0 ||
      reinterpret_cast<uintptr_t>(gmem_src) % static_cast<uintptr_t>(bytes) != 0)
    kernel_fault("cp.async: addresses not aligned to the copy size " + std::to_string(bytes));
  if (!shared_range_ok(smem_dst, static_cast<size_t>(bytes)))
    kernel_fault("cp.async: destination is not inside the block's shared memory");
  std::string why;
  if (src_bytes > 0 && !device_range_ok(gmem_src, static_cast<size_t>(src_bytes), &why))
    kernel_fault("cp.async: out-of-bounds global read: " + why);
  CpAsyncState& s = current_cp_async();
  s.open.push_back(CpCopy{smem_dst, gmem_src, bytes, src_bytes});
  if (launch_landing() == CpAsyncLanding::kEager) land(s.open);
}

void cp_async_commit() {
  CpAsyncState& s = current_cp_async();
  CpGroup g;
  g.copies = std::move(s.open);
  s.open = s.take_spare();
  if (launch_landing() == CpAsyncLanding::kRandom) {
    // 0: lands now (at issue); 1..kHorizon-1: at that many of this thread's next
    // synchronization points; kHorizon: at the wait.
    constexpr int kHorizon = 4;
    const int when = static_cast<int>(launch_random() % (kHorizon + 1));
    if (when == 0) land(g.copies);
    g.countdown = when == kHorizon ? CpGroup::kAtWait : when;
  }
  s.groups.push_back(std::move(g));
}

void cp_async_wait(int n) {
  CpAsyncState& s = current_cp_async();
  while (static_cast<int>(s.groups.size()) > n) {
    land(s.groups.front().copies);
    s.retire_oldest();
  }
}

}  // namespace ringtrain::gpu::emu
