// Device memory of the emulated device, in host memory: every allocation poisoned (0xFF) and
// ending at a PROT_NONE guard page, its rounding slack a canary; pinned host memory; the
// synchronous and stream-ordered copies and fills, with their ranges checked against the live
// allocations. In the AddressSanitizer build allocations come from the instrumented heap at
// their exact sizes instead.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {
namespace emu {
namespace {

struct Alloc {
  size_t size;       // requested
  size_t rounded;    // to kAllocAlign: [base + size, base + rounded) is the canary slack
  char* map_base;    // the mapping (guard page at its end)
  size_t map_bytes;
  bool pinned_host;
};

struct Registry {
  std::mutex mu;
  std::map<uintptr_t, Alloc> allocs;  // by base address
  size_t in_use = 0;
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: used by the fault handler
  return *r;
}

// The allocation containing p (or p's first byte past its end, for messages).
const std::pair<const uintptr_t, Alloc>* find_alloc(uintptr_t p) {
  auto& allocs = registry().allocs;
  auto it = allocs.upper_bound(p);
  if (it == allocs.begin()) return nullptr;
  --it;
  return &*it;
}

}  // namespace

bool device_range_ok(const void* p, size_t bytes, std::string* why) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const auto* hit = find_alloc(a);
  if (!hit || hit->second.pinned_host || a >= hit->first + hit->second.rounded + page_size()) {
    if (why) *why = "address " + std::to_string(a) + " is not in any device allocation";
    return false;
  }
  const size_t off = a - hit->first;
  if (off + bytes > hit->second.size) {
    if (why)
      *why = "bytes [" + std::to_string(off) + ", " + std::to_string(off + bytes) + ") of an allocation of " +
             std::to_string(hit->second.size) + " bytes";
    return false;
  }
  return true;
}

std::string check_canaries() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [base, a] : r.allocs) {
    const unsigned char* c = reinterpret_cast<const unsigned char*>(base);
    for (size_t i = a.size; i < a.rounded; ++i)
      if (c[i] != 0xFF)
        return "byte " + std::to_string(i) + " of an allocation of " + std::to_string(a.size) +
               " bytes was written (" + std::to_string(i - a.size) + " bytes past its end)";
  }
  return "";
}

std::string describe_allocation_guard_hit(const void* addr) {
  // Called from the signal handler: no locks (the process ends right after).
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  const auto* hit = find_alloc(a);
  if (hit && !hit->second.pinned_host) {
    const uintptr_t guard_lo = hit->first + hit->second.rounded;
    if (a >= guard_lo && a < guard_lo + page_size())
      return "read or write " + std::to_string(a - hit->first - hit->second.size) +
             " bytes past the end of a device allocation of " + std::to_string(hit->second.size) + " bytes";
  }
  return "";
}
}  // namespace emu

using emu::fail;

Status mem_get_info(size_t* free_bytes, size_t* total_bytes) {
  emu::Registry& r = emu::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  *total_bytes = emu::kTotalMemory;
  *free_bytes = emu::kTotalMemory - std::min(r.in_use, emu::kTotalMemory);
  return Status::kSuccess;
}

namespace {
Status alloc_guarded(void** ptr, size_t bytes, bool pinned_host) {
  if (!ptr) return fail(Status::kInvalidValue, "null result pointer");
  emu::install_fault_handler();
  const size_t ps = emu::page_size();
  const size_t rounded = emu::round_up(std::max<size_t>(bytes, 1), emu::kAllocAlign);
  const size_t map_bytes = emu::round_up(rounded, ps) + ps;
  emu::Registry& r = emu::registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.in_use + bytes > emu::kTotalMemory)
      return fail(Status::kMemoryAllocation, "the emulated device's 80 GiB are in use");
  }
#if defined(RINGTRAIN_EMU_ASAN)
  // AddressSanitizer build: exactly `bytes` on the instrumented heap (byte-exact bounds).
  (void)map_bytes;
  void* h = nullptr;
  if (posix_memalign(&h, emu::kAllocAlign, std::max<size_t>(bytes, 1)) != 0)
    return fail(Status::kMemoryAllocation, "host allocation of " + std::to_string(bytes) + " bytes failed");
  std::memset(h, 0xFF, bytes);
  std::lock_guard<std::mutex> lock_asan(r.mu);
  r.allocs[reinterpret_cast<uintptr_t>(h)] = emu::Alloc{bytes, bytes, static_cast<char*>(h), 0, pinned_host};
  if (!pinned_host) r.in_use += bytes;
  *ptr = h;
  return Status::kSuccess;
#endif
  void* m = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return fail(Status::kMemoryAllocation, "host mmap of " + std::to_string(map_bytes) + " bytes failed");
  char* base = static_cast<char*>(m);
  mprotect(base + map_bytes - ps, ps, PROT_NONE);
  char* user = base + map_bytes - ps - rounded;
  std::memset(user, 0xFF, rounded);  // poison: NaN in every float type, -1 in every integer
  std::lock_guard<std::mutex> lock(r.mu);
  r.allocs[reinterpret_cast<uintptr_t>(user)] = emu::Alloc{bytes, rounded, base, map_bytes, pinned_host};
  if (!pinned_host) r.in_use += bytes;
  *ptr = user;
  return Status::kSuccess;
}
Status free_guarded(void* ptr, bool pinned_host) {
  if (!ptr) return Status::kSuccess;
  emu::drain_all();  // cudaFree and cudaFreeHost synchronize the device first
  emu::Registry& r = emu::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.allocs.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == r.allocs.end() || it->second.pinned_host != pinned_host)
    return fail(Status::kInvalidValue, pinned_host ? "not a pinned host allocation" : "not the start of a live device allocation");
  const emu::Alloc a = it->second;
  const unsigned char* c = static_cast<const unsigned char*>(ptr);
  for (size_t i = a.size; i < a.rounded; ++i)
    if (c[i] != 0xFF) {
      r.allocs.erase(it);
      munmap(a.map_base, a.map_bytes);
      return fail(Status::kIllegalAddress, "allocation of " + std::to_string(a.size) + " bytes was written past its end");
    }
  r.allocs.erase(it);
  if (!pinned_host) r.in_use -= a.size;
  if (a.map_bytes == 0)
    std::free(a.map_base);  // AddressSanitizer build: from the heap
  else
    munmap(a.map_base, a.map_bytes);
  return Status::kSuccess;
}

bool range_in_device(const void* p, size_t bytes, std::string* why) { return emu::device_range_ok(p, bytes, why); }

Status check_copy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  if (bytes == 0) return Status::kSuccess;
  std::string why;
  const bool dst_dev = range_in_device(dst, bytes, nullptr);
  const bool src_dev = range_in_device(src, bytes, nullptr);
  auto need = [&](const void* p, bool dev, const char* role) -> Status {
    if (dev) return Status::kSuccess;
    range_in_device(p, bytes, &why);
    return fail(Status::kInvalidValue, std::string("memcpy ") + role + " is not " + std::to_string(bytes) +
                                          " bytes of device memory: " + why);
  };
  switch (kind) {
    case CopyKind::kHostToDevice: return need(dst, dst_dev, "destination");
    case CopyKind::kDeviceToHost: return need(src, src_dev, "source");
    case CopyKind::kDeviceToDevice: {
      Status e = need(dst, dst_dev, "destination");
      return e != Status::kSuccess ? e : need(src, src_dev, "source");
    }
    case CopyKind::kHostToHost:
    case CopyKind::kDefault: {
      // A pointer inside an allocation whose range runs past its end is a bug, whatever the kind.
      for (const void* p : {static_cast<const void*>(dst), src}) {
        if (!is_device_pointer(p)) continue;
        if (!range_in_device(p, bytes, &why)) return fail(Status::kInvalidValue, "memcpy range overruns: " + why);
      }
      return Status::kSuccess;
    }
  }
  return fail(Status::kInvalidMemcpyDirection, "unknown copy kind");
}
}  // namespace

Status device_alloc(void** ptr, size_t bytes) { return alloc_guarded(ptr, bytes, false); }
Status device_free(void* ptr) { return free_guarded(ptr, false); }
Status host_alloc_pinned(void** ptr, size_t bytes) { return alloc_guarded(ptr, bytes, true); }
Status host_free_pinned(void* ptr) { return free_guarded(ptr, true); }

bool is_device_pointer(const void* ptr) {
  emu::Registry& r = emu::registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const auto* hit = emu::find_alloc(reinterpret_cast<uintptr_t>(ptr));
  return hit && !hit->second.pinned_host && reinterpret_cast<uintptr_t>(ptr) < hit->first + hit->second.rounded;
}

Status memcpy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  const Status e = check_copy(dst, src, bytes, kind);
  if (e != Status::kSuccess) return e;
  if (bytes) std::memmove(dst, src, bytes);
  return Status::kSuccess;
}
Status memcpy_async(void* dst, const void* src, size_t bytes, CopyKind kind, Stream stream) {
  trace_note(stream, "memcpy " + std::to_string(bytes));
  const Status e = check_copy(dst, src, bytes, kind);
  if (e != Status::kSuccess) return e;
  emu::enqueue(stream, [dst, src, bytes] {
    if (bytes) std::memmove(dst, src, bytes);
  });
  return Status::kSuccess;
}
Status memset(void* ptr, int value, size_t bytes) {
  std::string why;
  if (bytes && !emu::device_range_ok(ptr, bytes, &why)) return fail(Status::kInvalidValue, "memset: " + why);
  std::memset(ptr, value, bytes);
  return Status::kSuccess;
}
Status memset_async(void* ptr, int value, size_t bytes, Stream stream) {
  trace_note(stream, "memset " + std::to_string(bytes));
  std::string why;
  if (bytes && !emu::device_range_ok(ptr, bytes, &why)) return fail(Status::kInvalidValue, "memset: " + why);
  emu::enqueue(stream, [ptr, value, bytes] { std::memset(ptr, value, bytes); });
  return Status::kSuccess;
}

}  // namespace ringtrain::gpu
