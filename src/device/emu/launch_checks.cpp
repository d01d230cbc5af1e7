// The launch checks of the emulated device, as the device makes them: block and grid
// dimensions, the kernel's __launch_bounds__, dynamic shared memory against 48 KiB or the
// kernel's raised attribute, never above the opt-in maximum of the architecture enforced
// (sm_80 or sm_90a), registers x threads (register_file.cpp); and the kernel names the
// emulator's messages use.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "src/core/error.h"
#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {

using emu::fail;

namespace {
std::mutex g_attr_mu;
std::map<const void*, int>& max_dyn_smem() {
  static std::map<const void*, int> m;
  return m;
}
}  // namespace

namespace emu {
Arch g_arch = Arch::kSm80;
bool g_arch_from_env = false;
Arch arch_now() {
  if (!g_arch_from_env) {
    g_arch_from_env = true;
    if (const char* e = std::getenv("RINGTRAIN_EMU_ARCH")) {
      const std::string s = e;
      if (s == "sm_80") g_arch = Arch::kSm80;
      else if (s == "sm_90a") g_arch = Arch::kSm90a;
      else ringtrain::input_error("RINGTRAIN_EMU_ARCH=", s, ": expected sm_80 or sm_90a");
    }
  }
  return g_arch;
}
size_t shared_optin_limit() { return arch_now() == Arch::kSm80 ? kSharedPerBlockOptinSm80 : kSharedPerBlockOptin; }
int dynamic_smem_attribute(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_attr_mu);
  auto it = max_dyn_smem().find(kernel);
  return it == max_dyn_smem().end() ? -1 : it->second;
}
}  // namespace emu

void set_emulated_arch(Arch arch) {
  emu::g_arch_from_env = true;
  emu::g_arch = arch;
}
Arch emulated_arch() { return emu::arch_now(); }

Status func_set_max_dynamic_smem(const void* kernel, int bytes) {
  if (!kernel) return fail(Status::kInvalidDeviceFunction, "null kernel");
  if (bytes < 0 || static_cast<size_t>(bytes) > emu::shared_optin_limit())
    return fail(Status::kInvalidValue, "cudaFuncAttributeMaxDynamicSharedMemorySize " + std::to_string(bytes) +
                                          " above " + arch_name(emulated_arch()) + "'s opt-in maximum of " +
                                          std::to_string(emu::shared_optin_limit()) + " bytes");
  std::lock_guard<std::mutex> lock(g_attr_mu);
  max_dyn_smem()[kernel] = bytes;
  return Status::kSuccess;
}

namespace {

// Length of the x86-64 NOP at p, 0 when p holds none: 0x90, or the multi-byte form compilers
// pad with (0x66/0x2e prefixes, 0f 1f and a memory ModRM operand; clang uses those).
size_t nop_length(const unsigned char* p) {
  size_t n = 0;
  while (p[n] == 0x66 || p[n] == 0x2e) ++n;
  if (p[n] == 0x90) return n + 1;
  if (p[n] != 0x0f || p[n + 1] != 0x1f) return 0;
  n += 2;
  const unsigned modrm = p[n++], mod = modrm >> 6, rm = modrm & 7;
  if (mod == 3) return 0;
  if (rm == 4) ++n;  // SIB byte
  if (mod == 1) n += 1;
  else if (mod == 2 || (mod == 0 && rm == 5)) n += 4;
  return n;
}

// The kernel's __launch_bounds__ maximum (emu_kernel.h: that many bytes of NOPs at its entry,
// after an endbr64 and UndefinedBehaviorSanitizer's function signature where the compiler puts
// them), 0 when it has none.
int launch_bound(const void* kernel) {
  static std::mutex mu;
  static std::map<const void*, int> known;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(kernel);
  if (it != known.end()) return it->second;
  const unsigned char* code = static_cast<const unsigned char*>(kernel);
  if (code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && code[3] == 0xfa) code += 4;
  if (code[0] == 0xeb) code += 2 + code[1];  // a jump over -fsanitize=function's signature
  size_t bytes = 0, len = 0;
  while (bytes <= static_cast<size_t>(emu::kMaxThreadsPerBlock) && (len = nop_length(code + bytes)) > 0) bytes += len;
  known[kernel] = static_cast<int>(bytes);
  return static_cast<int>(bytes);
}

}  // namespace

namespace detail {

Status check_launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes) {
  if (!kernel) return fail(Status::kInvalidDeviceFunction, "null kernel");
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  const int bound = launch_bound(kernel);
  // The device refuses a block above the kernel's bound: ptxas sized its registers for it.
  if (bound > 0 && threads > static_cast<uint64_t>(bound))
    return fail(Status::kLaunchOutOfResources, "block of " + std::to_string(threads) +
                                                   " threads above the kernel's __launch_bounds__(" +
                                                   std::to_string(bound) + ")");
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
      threads > static_cast<uint64_t>(emu::kMaxThreadsPerBlock))
    return fail(Status::kInvalidConfiguration, "block (" + std::to_string(block.x) + "," + std::to_string(block.y) +
                                                  "," + std::to_string(block.z) + ") has " + std::to_string(threads) +
                                                  " threads; at most 1024, z at most 64");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return fail(Status::kInvalidConfiguration, "grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," +
                                                  std::to_string(grid.z) + ") outside the device's limits");
  if (const Status e = emu::check_registers(kernel, threads); e != Status::kSuccess) return e;
  const int attr = emu::dynamic_smem_attribute(kernel);
  // An attribute raised under another architecture counts up to this one's maximum only.
  const size_t limit = attr < 0 ? emu::kSharedPerBlock : std::min(static_cast<size_t>(attr), emu::shared_optin_limit());
  if (smem_bytes > limit)
    return fail(Status::kInvalidValue,
                "dynamic shared memory of " + std::to_string(smem_bytes) + " bytes above the kernel's limit of " +
                    std::to_string(limit) + " (raise it with func_set_max_dynamic_smem; never above " +
                    std::to_string(emu::shared_optin_limit()) + " on " + arch_name(emulated_arch()) + ")");
  return Status::kSuccess;
}

std::string kernel_name(const void* kernel) {
  const std::string s = emu::demangled_symbol(kernel);
  if (!s.empty()) {
    const size_t paren = s.find('(');
    return paren == std::string::npos ? s : s.substr(0, paren);
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", kernel);
  return buf;
}

}  // namespace detail

}  // namespace ringtrain::gpu
