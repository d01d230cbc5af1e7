// Internals shared by the emulator's translation units (not for kernels or host code).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

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
inline constexpr size_t kTotalMemory = size_t{80} << 30;
inline constexpr size_t kAllocAlign = 16;

// Device allocations: each one ends at a PROT_NONE guard page (its size rounded up to 16
// bytes touches the guard); the rounding slack is a canary checked after every launch.
// Returns true when [p, p + bytes) lies inside one live allocation; else fills `why`.
bool device_range_ok(const void* p, size_t bytes, std::string* why);
// Checks every live allocation's slack canary; returns "" or a description of the first
// allocation written past its end.
std::string check_canaries();

// Shared memory of the block being run (for ldmatrix / cp.async checks and fault reports).
bool shared_range_ok(const void* p, size_t bytes);

// Where a faulting address is, for the SIGSEGV report ("" when not ours).
std::string describe_guard_hit(const void* addr);
void register_guard(const void* lo, size_t bytes, const char* what);
void install_fault_handler();
// What the fault handler prints about the CUDA thread that was running.
std::string current_thread_description();

void set_last_error(Status e, const std::string& detail);
// Runs `op` now (eager mode, default stream) or when the stream is drained (deferred mode).
void enqueue(Stream stream, std::function<void()> op);
void trace_launch(Stream stream, const std::string& what);

}  // namespace ringtrain::gpu::emu
