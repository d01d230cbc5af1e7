// The emulated machine: one device, its properties (the limits of the architecture being
// enforced, "emulated" in its name) and the host thread's current device.
#include <unistd.h>

#include <string>

#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {
namespace {
thread_local int tl_device = 0;
}  // namespace

using emu::fail;

Status get_device_count(int* count) {
  *count = 1;
  return Status::kSuccess;
}
Status set_device(int device) {
  if (device != 0) return fail(Status::kInvalidDevice, "the emulated machine has one device (0)");
  tl_device = device;
  return Status::kSuccess;
}
Status get_device(int* device) {
  *device = tl_device;
  return Status::kSuccess;
}
Status get_device_properties(DeviceProps* p, int device) {
  if (device != 0) return fail(Status::kInvalidDevice, "the emulated machine has one device (0)");
  const bool sm80 = emulated_arch() == Arch::kSm80;
  p->name = std::string("ringtrain emulated CUDA device (") + arch_name(emulated_arch()) + " limits, CPU fibers; slow)";
  p->major = sm80 ? 8 : 9;
  p->minor = 0;
  p->total_memory = emu::kTotalMemory;
  p->multiprocessors = 132;
  p->max_threads_per_block = emu::kMaxThreadsPerBlock;
  p->shared_per_block = emu::kSharedPerBlock;
  p->shared_per_block_optin = emu::shared_optin_limit();
  p->warp_size = 32;
  p->emulated = true;
  p->pci_domain = 0;
  p->pci_bus = static_cast<int>(getpid());  // every process has its own emulated device
  p->pci_device = 0;
  return Status::kSuccess;
}

}  // namespace ringtrain::gpu
