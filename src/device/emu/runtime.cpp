// The emulated runtime: device memory in host memory (poisoned, guarded, bounds-checked),
// streams and events executed in issue order, device properties, error codes, launch checks,
// the out-of-bounds fault report, schedules and the operation trace.
#include <cxxabi.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {

struct StreamImpl {
  int id;
  std::deque<std::function<void()>> pending;  // deferred mode: issued, not yet run
};
struct EventImpl {
  bool recorded = false;
  int id = 0;
  double time_ms = 0.0;
  StreamImpl* stream = nullptr;  // where the latest record was issued
  uint64_t issued = 0;           // records issued
  uint64_t done = 0;             // records that have run
};

namespace emu {
namespace {

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}
size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

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
  struct Guard {
    uintptr_t lo, hi;
    const char* what;
  };
  std::vector<Guard> guards;  // shared memory and stack guards
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: used by the fault handler
  return *r;
}

thread_local Status tl_last_error = Status::kSuccess;
thread_local std::string tl_last_detail;
thread_local int tl_device = 0;

Schedule g_schedule = Schedule::kAscending;
uint64_t g_seed = 1;
CpAsyncLanding g_landing = CpAsyncLanding::kLazy;
bool g_schedule_from_env = false;

std::mutex g_trace_mu;
bool g_tracing = false;
std::vector<TraceEntry> g_trace;
int g_next_stream_id = 1;
int g_next_event_id = 1;

// Stream execution: eager (at issue, in issue order) or deferred (each non-default stream
// keeps its work until something waits for it; see set_stream_mode).
StreamMode g_stream_mode = StreamMode::kEager;
bool g_stream_mode_from_env = false;
std::vector<StreamImpl*> g_streams;  // live streams, creation order

StreamMode stream_mode_now() {
  if (!g_stream_mode_from_env) {
    g_stream_mode_from_env = true;
    const char* e = std::getenv("RINGTRAIN_EMU_STREAMS");
    if (e && std::string(e) == "deferred") g_stream_mode = StreamMode::kDeferred;
  }
  return g_stream_mode;
}

// Runs the oldest pending operation of a stream (false when none).
bool run_one(StreamImpl* s) {
  if (!s || s->pending.empty()) return false;
  std::function<void()> op = std::move(s->pending.front());
  s->pending.pop_front();
  op();
  return true;
}
void drain(StreamImpl* s) {
  while (run_one(s)) {
  }
}
// Device-wide: every stream in the order of the current schedule (creation order, reversed,
// or shuffled), so work on independent streams runs in different orders under different
// schedules.
void drain_all() {
  bool any = true;
  while (any) {
    any = false;
    std::vector<StreamImpl*> order = g_streams;
    const Schedule sched = current_schedule();
    if (sched == Schedule::kDescending) std::reverse(order.begin(), order.end());
    if (sched == Schedule::kShuffle) {
      std::mt19937_64 rng(current_schedule_seed());
      std::shuffle(order.begin(), order.end(), rng);
    }
    for (StreamImpl* s : order)
      if (!s->pending.empty()) {
        drain(s);
        any = true;
      }
  }
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

Status fail(Status e, const std::string& detail) {
  set_last_error(e, detail);
  return e;
}

// The allocation containing p (or p's first byte past its end, for messages).
const std::pair<const uintptr_t, Alloc>* find_alloc(uintptr_t p) {
  auto& allocs = registry().allocs;
  auto it = allocs.upper_bound(p);
  if (it == allocs.begin()) return nullptr;
  --it;
  return &*it;
}

struct sigaction g_old_segv {}, g_old_bus {};

void fault_handler(int sig, siginfo_t* info, void*) {
  const std::string where = describe_guard_hit(info->si_addr);
  if (!where.empty()) {
    std::string msg = "ringtrain emulated device: out-of-bounds access: " + where;
    const std::string who = current_thread_description();
    if (!who.empty()) msg += " (" + who + ")";
    msg += "\n";
    ssize_t w = write(2, msg.data(), msg.size());
    (void)w;
    _exit(3);
  }
  // Not ours: put back whatever handled it before (MPI's, or the default) and return; the
  // access executes again and reaches that handler.
  sigaction(sig, sig == SIGBUS ? &g_old_bus : &g_old_segv, nullptr);
}

}  // namespace

void set_last_error(Status e, const std::string& detail) {
  tl_last_error = e;
  tl_last_detail = detail;
}

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

void register_guard(const void* lo, size_t bytes, const char* what) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const uintptr_t l = reinterpret_cast<uintptr_t>(lo);
  r.guards.push_back({l, l + bytes, what});
}

std::string describe_guard_hit(const void* addr) {
  // Called from the signal handler: no locks (the process ends right after).
  Registry& r = registry();
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  const auto* hit = find_alloc(a);
  if (hit && !hit->second.pinned_host) {
    const uintptr_t guard_lo = hit->first + hit->second.rounded;
    if (a >= guard_lo && a < guard_lo + page_size())
      return "read or write " + std::to_string(a - hit->first - hit->second.size) +
             " bytes past the end of a device allocation of " + std::to_string(hit->second.size) + " bytes";
  }
  for (const auto& g : r.guards)
    if (a >= g.lo && a < g.hi) return "access beyond " + std::string(g.what);
  return "";
}

void install_fault_handler() {
  static bool installed = false;
  thread_local bool alt_stack = false;
  if (!alt_stack) {
    // The handler must not run on a fiber stack that just overflowed.
    static thread_local std::vector<char> stack(64 * 1024);
    stack_t ss{};
    ss.ss_sp = stack.data();
    ss.ss_size = stack.size();
    sigaltstack(&ss, nullptr);
    alt_stack = true;
  }
  if (installed) return;
  installed = true;
#if defined(RINGTRAIN_EMU_ASAN)
  return;  // AddressSanitizer reports faults itself
#endif
  struct sigaction sa{};
  sa.sa_sigaction = &fault_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
  sigaction(SIGBUS, &sa, &g_old_bus);
}

void trace_launch(Stream stream, const std::string& what) { trace_note(stream, what); }

void enqueue(Stream stream, std::function<void()> op) {
  if (!stream || stream_mode_now() == StreamMode::kEager)
    op();
  else
    stream->pending.push_back(std::move(op));
}

}  // namespace emu

using emu::fail;

const char* error_name(Status e) {
  switch (e) {
    case Status::kSuccess: return "cudaSuccess";
    case Status::kInvalidValue: return "cudaErrorInvalidValue";
    case Status::kMemoryAllocation: return "cudaErrorMemoryAllocation";
    case Status::kInitialization: return "cudaErrorInitializationError";
    case Status::kInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case Status::kInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case Status::kInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case Status::kInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case Status::kInvalidDevice: return "cudaErrorInvalidDevice";
    case Status::kInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case Status::kNotReady: return "cudaErrorNotReady";
    case Status::kIllegalAddress: return "cudaErrorIllegalAddress";
    case Status::kLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case Status::kLaunchFailure: return "cudaErrorLaunchFailure";
    case Status::kNotSupported: return "cudaErrorNotSupported";
    case Status::kUnknown: return "cudaErrorUnknown";
  }
  return "cudaError(unknown code)";
}

std::string last_error_detail() { return emu::tl_last_detail; }

void gpu_failed(Status e, const char* call, const char* file, int line) {
  const std::string detail = last_error_detail();
  ringtrain::fault(call, " failed: ", error_name(e), detail.empty() ? "" : " (", detail,
                   detail.empty() ? "" : ")", " at ", file, ":", line);
}

Status get_device_count(int* count) {
  *count = 1;
  return Status::kSuccess;
}
Status set_device(int device) {
  if (device != 0) return fail(Status::kInvalidDevice, "the emulated machine has one device (0)");
  emu::tl_device = device;
  return Status::kSuccess;
}
Status get_device(int* device) {
  *device = emu::tl_device;
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
Status device_synchronize() {
  emu::drain_all();
  return Status::kSuccess;
}
Status get_last_error() {
  const Status e = emu::tl_last_error;
  emu::tl_last_error = Status::kSuccess;
  return e;
}
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

Status stream_create(Stream* stream) {
  std::lock_guard<std::mutex> lock(emu::g_trace_mu);
  *stream = new StreamImpl{emu::g_next_stream_id++, {}};
  emu::g_streams.push_back(*stream);
  return Status::kSuccess;
}
Status stream_destroy(Stream stream) {
  if (!stream) return Status::kSuccess;
  emu::drain(stream);  // CUDA lets issued work finish
  emu::g_streams.erase(std::remove(emu::g_streams.begin(), emu::g_streams.end(), stream), emu::g_streams.end());
  delete stream;
  return Status::kSuccess;
}
Status stream_synchronize(Stream stream) {
  emu::drain(stream);
  return Status::kSuccess;
}
namespace {
// Runs the recording stream until record number `gen` of the event has run.
void wait_record(Event event, uint64_t gen) {
  while (event->done < gen)
    if (!emu::run_one(event->stream)) break;
}
}  // namespace
Status stream_wait_event(Stream stream, Event event) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  trace_note(stream, "wait_event #" + std::to_string(event->id));
  const uint64_t gen = event->issued;  // the latest record at the time of the call
  emu::enqueue(stream, [event, gen] { wait_record(event, gen); });
  return Status::kSuccess;
}
Status event_create(Event* event) {
  std::lock_guard<std::mutex> lock(emu::g_trace_mu);
  *event = new EventImpl{};
  (*event)->id = emu::g_next_event_id++;
  return Status::kSuccess;
}
Status event_destroy(Event event) {
  delete event;
  return Status::kSuccess;
}
Status event_record(Event event, Stream stream) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  event->recorded = true;
  event->stream = stream;
  const uint64_t gen = ++event->issued;
  trace_note(stream, "event_record #" + std::to_string(event->id));
  emu::enqueue(stream, [event, gen] {
    event->done = gen;
    event->time_ms = emu::now_ms();
  });
  return Status::kSuccess;
}
Status event_query(Event event) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  if (event->done >= event->issued) return Status::kSuccess;
  emu::run_one(event->stream);  // the device makes progress while the host polls
  return event->done >= event->issued ? Status::kSuccess : Status::kNotReady;
}
Status event_synchronize(Event event) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  wait_record(event, event->issued);
  return Status::kSuccess;
}
Status event_elapsed_ms(float* ms, Event start, Event end) {
  if (!start || !end) return fail(Status::kInvalidResourceHandle, "null event");
  if (!start->recorded || !end->recorded) return fail(Status::kInvalidResourceHandle, "event not recorded");
  *ms = static_cast<float>(end->time_ms - start->time_ms);
  return Status::kSuccess;
}

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
const char* arch_name(Arch a) { return a == Arch::kSm80 ? "sm_80" : "sm_90a"; }

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

// The kernel's __launch_bounds__ maximum (emu_kernel.h: that many NOPs at its entry, after an
// endbr64 where the compiler puts one), 0 when it has none.
int launch_bound(const void* kernel) {
  static std::mutex mu;
  static std::map<const void*, int> known;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(kernel);
  if (it != known.end()) return it->second;
  const unsigned char* code = static_cast<const unsigned char*>(kernel);
  if (code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && code[3] == 0xfa) code += 4;
  int nops = 0;
  while (nops <= emu::kMaxThreadsPerBlock && code[nops] == 0x90) ++nops;
  known[kernel] = nops;
  return nops;
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
  Dl_info info{};
  if (dladdr(kernel, &info) && info.dli_sname) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> dem(abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status), std::free);
    std::string s = status == 0 && dem ? dem.get() : info.dli_sname;
    const size_t paren = s.find('(');
    return paren == std::string::npos ? s : s.substr(0, paren);
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", kernel);
  return buf;
}

}  // namespace detail

// ---- schedules ----
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
std::string schedule_description() {
  std::string s = schedule_name(current_schedule());
  if (current_schedule() == Schedule::kShuffle || current_cp_async_landing() == CpAsyncLanding::kRandom)
    s.append(":").append(std::to_string(current_schedule_seed()));
  return s.append("+").append(landing_name(current_cp_async_landing()));
}

void set_stream_mode(StreamMode mode) {
  emu::drain_all();
  emu::g_stream_mode_from_env = true;
  emu::g_stream_mode = mode;
}
StreamMode current_stream_mode() { return emu::stream_mode_now(); }

// ---- trace ----
void trace_start() {
  std::lock_guard<std::mutex> lock(emu::g_trace_mu);
  emu::g_trace.clear();
  emu::g_tracing = true;
}
std::vector<TraceEntry> trace_stop() {
  std::lock_guard<std::mutex> lock(emu::g_trace_mu);
  emu::g_tracing = false;
  return std::move(emu::g_trace);
}
int stream_id(Stream stream) { return stream ? stream->id : 0; }
void trace_note(Stream stream, const std::string& what) {
  std::lock_guard<std::mutex> lock(emu::g_trace_mu);
  if (emu::g_tracing) emu::g_trace.push_back({stream ? stream->id : 0, what});
}

}  // namespace ringtrain::gpu
