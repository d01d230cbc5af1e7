// Internals shared by the emulator's translation units (not for kernels or host code).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/device/gpu.h"

namespace ringtrain::gpu::emu {

// Limits of the emulated device. Shared memory per block: 48 KiB (static + dynamic) unless the
// kernel's dynamic limit was raised, then at most the architecture's opt-in maximum (sm_80:
// 163 KiB, sm_90a: 227 KiB; CUDA C++ Programming Guide, "Compute Capabilities", Table
// "Technical Specifications per Compute Capability").
inline constexpr size_t kSharedPerBlock = 48 * 1024;
inline constexpr size_t kSharedPerBlockOptinSm80 = 163 * 1024;
inline constexpr size_t kSharedPerBlockOptin = 227 * 1024;  // the largest any target allows
size_t shared_optin_limit();  // of the architecture being enforced
// The kernel's cudaFuncAttributeMaxDynamicSharedMemorySize, or -1 when never raised.
int dynamic_smem_attribute(const void* kernel);
inline constexpr int kMaxThreadsPerBlock = 1024;
// cudaErrorLaunchOutOfResources when a block of `threads` needs more registers than a block has
// (register_file.cpp: ptxas's count for the kernel on the enforced architecture);
// cudaErrorInvalidDeviceFunction for a kernel ptxas's table lacks.
Status check_registers(const void* kernel, uint64_t threads);
// The function's name in the binary's symbol table (internal linkage included): mangled,
// demangled; "" when it has none.
std::string mangled_symbol(const void* fn);
std::string demangled_symbol(const void* fn);
Arch arch_now();
inline constexpr size_t kTotalMemory = size_t{80} << 30;
inline constexpr size_t kAllocAlign = 16;

inline size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}
inline size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Device allocations: each one ends at a PROT_NONE guard page (its size rounded up to 16
// bytes touches the guard); the rounding slack is a canary checked after every launch.
// Returns true when [p, p + bytes) lies inside one live allocation; else fills `why`.
bool device_range_ok(const void* p, size_t bytes, std::string* why);
// Checks every live allocation's slack canary; returns "" or a description of the first
// allocation written past its end.
std::string check_canaries();

// Shared memory of the block being run (for ldmatrix / cp.async checks and fault reports).
bool shared_range_ok(const void* p, size_t bytes);

// Where a faulting address is, for the SIGSEGV report ("" when not ours); the first checks
// the device allocations' guard pages only. Both take no lock (they run in the signal handler).
std::string describe_guard_hit(const void* addr);
std::string describe_allocation_guard_hit(const void* addr);
void register_guard(const void* lo, size_t bytes, const char* what);
void install_fault_handler();
// What the fault handler prints about the CUDA thread that was running.
std::string current_thread_description();

void set_last_error(Status e, const std::string& detail);
// set_last_error(e, detail), then e.
Status fail(Status e, const std::string& detail);
// Runs every stream's pending work (deferred mode), streams in the order of the schedule.
void drain_all();
// Runs `op` now (eager mode, default stream) or when the stream is drained (deferred mode).
void enqueue(Stream stream, std::function<void()> op);

// ---- between the scheduler (scheduler.cpp) and the instructions it runs for the CUDA thread
// on this OS thread (tensor_core.cpp, cp_async.cpp) ----
// Ends the running thread's block with a kernel fault naming `what` (never returns).
[[noreturn]] void kernel_fault(const std::string& what);
int current_lane();

// cp.async of one CUDA thread: the copies issued since its last commit, and its committed
// groups not yet landed, each with how many more of the thread's synchronization points it
// waits before it lands (kAtWait: only at cp.async.wait_group).
struct CpCopy {
  void* dst;
  const void* src;
  int bytes;
  int src_bytes;
};
struct CpGroup {
  static constexpr int kAtWait = -1;
  std::vector<CpCopy> copies;
  int countdown = kAtWait;
};
// The lists' storage is kept from group to group and block to block (spare): a thread issues
// and retires groups in every key step of the flash kernels, and allocation is most of the
// emulation's cost under AddressSanitizer.
struct CpAsyncState {
  std::vector<CpCopy> open;
  std::vector<CpGroup> groups;             // oldest first
  std::vector<std::vector<CpCopy>> spare;  // emptied copy lists
  std::vector<CpCopy> take_spare() {
    if (spare.empty()) return {};
    std::vector<CpCopy> v = std::move(spare.back());
    spare.pop_back();
    return v;
  }
  void retire_oldest() {
    groups.front().copies.clear();
    spare.push_back(std::move(groups.front().copies));
    groups.erase(groups.begin());
  }
  // A new block: nothing issued, nothing in flight.
  void reset() {
    open.clear();
    while (!groups.empty()) retire_oldest();
  }
};
CpAsyncState& current_cp_async();
// The landing of the launch running (fixed at launch), and its seeded random stream.
CpAsyncLanding launch_landing();
uint64_t launch_random();
// A synchronization point of the thread owning `s`: its groups due there land.
void cp_async_sync_point(CpAsyncState& s);

}  // namespace ringtrain::gpu::emu
