// The GPU layer, host side: the only door to a CUDA device for the rest of ringtrain.
// Two implementations chosen at build time, same API:
//   RINGTRAIN_GPU_CUDA     the CUDA runtime and cuBLAS on a real device (nvcc build);
//   RINGTRAIN_GPU_EMULATE  an emulated device on the CPU (host memory, every CUDA thread a
//                          fiber; see docs/GPU-EMULATION.md).
// Host code includes this header; kernel sources (.cu) include src/device/kernel.h.
// Every call returns a Status whose values are the CUDA runtime's own (cudaError_t), so a
// launch the device would refuse is refused here with the same code. Wrap calls in CUDA_CHECK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <vector_types.h>  // dim3, uint3, float4, ... (host-compilable CUDA header)

#include "src/core/error.h"
#include "src/core/tensor.h"

#if defined(RINGTRAIN_GPU_CUDA)
#include <cuda_runtime_api.h>
#elif !defined(RINGTRAIN_GPU_EMULATE)
#error "src/device/gpu.h needs RINGTRAIN_GPU_CUDA or RINGTRAIN_GPU_EMULATE (link ringtrain_device)"
#endif

namespace ringtrain::gpu {

// The CUDA runtime's error codes (same numeric values as cudaError_t).
enum class Status : int {
  kSuccess = 0,
  kInvalidValue = 1,
  kMemoryAllocation = 2,
  kInitialization = 3,
  kInvalidConfiguration = 9,
  kInvalidDevicePointer = 17,
  kInvalidMemcpyDirection = 21,
  kInvalidDeviceFunction = 98,
  kInvalidDevice = 101,
  kInvalidResourceHandle = 400,
  kNotReady = 600,
  kIllegalAddress = 700,
  kLaunchOutOfResources = 701,
  kLaunchFailure = 719,
  kNotSupported = 801,
  kUnknown = 999,
};
// "cudaErrorInvalidConfiguration", ... (the runtime's names).
const char* error_name(Status e);
// What the layer knows beyond the code about the last failed call on this thread (the
// emulator says which allocation, which limit); "" when nothing.
std::string last_error_detail();

#if defined(RINGTRAIN_GPU_CUDA)
using Stream = cudaStream_t;
using Event = cudaEvent_t;
#else
struct StreamImpl;
struct EventImpl;
using Stream = StreamImpl*;
using Event = EventImpl*;
#endif

// True in the emulation build.
constexpr bool kEmulated =
#if defined(RINGTRAIN_GPU_EMULATE)
    true;
#else
    false;
#endif

struct DeviceProps {
  std::string name;  // the emulated device says so: "ringtrain emulated CUDA device (sm_90)"
  int major = 0, minor = 0;
  size_t total_memory = 0;
  int multiprocessors = 0;
  int max_threads_per_block = 0;
  size_t shared_per_block = 0;        // without opt-in (48 KiB)
  size_t shared_per_block_optin = 0;  // after raising the kernel attribute (227 KiB on sm_90)
  int warp_size = 32;
  bool emulated = false;
  // Where the device sits (PCI domain, bus, device): two processes whose ids are equal share a
  // GPU. Each process's emulated device is its own (the bus is the process id).
  int pci_domain = 0, pci_bus = 0, pci_device = 0;
};

Status get_device_count(int* count);
Status set_device(int device);
Status get_device(int* device);
Status get_device_properties(DeviceProps* props, int device);
Status device_synchronize();
// Returns and clears the sticky last error (cudaGetLastError).
Status get_last_error();
Status mem_get_info(size_t* free_bytes, size_t* total_bytes);

// Memory. Emulated: fresh allocations are poisoned (all bytes 0xFF: NaN for every float type)
// and guarded (see docs/GPU-EMULATION.md).
Status device_alloc(void** ptr, size_t bytes);
Status device_free(void* ptr);
Status host_alloc_pinned(void** ptr, size_t bytes);
Status host_free_pinned(void* ptr);
enum class CopyKind { kHostToHost = 0, kHostToDevice = 1, kDeviceToHost = 2, kDeviceToDevice = 3, kDefault = 4 };
Status memcpy(void* dst, const void* src, size_t bytes, CopyKind kind = CopyKind::kDefault);
Status memcpy_async(void* dst, const void* src, size_t bytes, CopyKind kind, Stream stream);
Status memset(void* ptr, int value, size_t bytes);
Status memset_async(void* ptr, int value, size_t bytes, Stream stream);
// True when ptr lies inside a live device allocation.
bool is_device_pointer(const void* ptr);

// Streams and events (stream 0 / nullptr is the legacy default stream).
Status stream_create(Stream* stream);
Status stream_destroy(Stream stream);
Status stream_synchronize(Stream stream);
Status stream_wait_event(Stream stream, Event event);
Status event_create(Event* event);
Status event_destroy(Event event);
Status event_record(Event event, Stream stream);
Status event_query(Event event);  // kSuccess or kNotReady
Status event_synchronize(Event event);
Status event_elapsed_ms(float* ms, Event start, Event end);

// Raises a kernel's dynamic shared memory limit above 48 KiB
// (cudaFuncAttributeMaxDynamicSharedMemorySize). Launches asking for more than 48 KiB of
// dynamic shared memory fail without it, exactly as on the device.
Status func_set_max_dynamic_smem(const void* kernel, int bytes);
template <typename... P>
Status func_set_max_dynamic_smem(void (*kernel)(P...), int bytes) {
  return func_set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), bytes);
}

// GEMM, row-major, the cuBLASLt contract: C[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C,
// A and B in bf16, f16 or f32, C in f32, bf16 or f16, fp32 accumulation; C is not read when
// beta == 0. Emulated: inputs widened exactly from their type, OpenBLAS sgemm in fp32, the
// epilogue in fp32 and one rounding to C's type.
Status gemm(Stream stream, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
           const void* a, DType a_type, int lda, const void* b, DType b_type, int ldb, float beta,
           void* c, DType c_type, int ldc);

// ---------------------------------------------------------------------------------------
// Emulator controls. They exist in both builds so tests compile everywhere; on a real device
// they do nothing (set_schedule) or report nothing (the trace stays empty).

// The order in which the emulator runs the threads of a block (and the blocks of a grid)
// between synchronization points. kAscending / kDescending: the lowest- / highest-numbered
// runnable thread runs next, so a warp runs ahead of the others as far as the barriers let it;
// kShuffle: every runnable thread once per round, in a seeded order redrawn every round (the
// warps stay in step).
enum class Schedule { kAscending, kDescending, kShuffle };
// When a cp.async copy lands in shared memory. The PTX ISA (section "Data Movement and
// Conversion Instructions: cp.async") lets it complete any time after issue, in no order with
// other cp.async operations, and guarantees only that cp.async.wait_group N has completed all
// but the N most recent groups. kLazy: at the wait (a read before the wait sees poison);
// kEager: at issue (a prefetch into a stage other threads still read overwrites it);
// kRandom: each group at a seeded random one of its issuing thread's synchronization points
// between issue and the wait.
enum class CpAsyncLanding { kLazy, kEager, kRandom };
// Default: RINGTRAIN_EMU_SCHEDULE=<ascending|descending|shuffle[:seed]>[+lazy|+eager|+random],
// else ascending+lazy. The seed drives both the shuffle and the random landing.
void set_schedule(Schedule schedule, uint64_t seed = 1, CpAsyncLanding landing = CpAsyncLanding::kLazy);
Schedule current_schedule();
uint64_t current_schedule_seed();
CpAsyncLanding current_cp_async_landing();
const char* schedule_name(Schedule schedule);
const char* landing_name(CpAsyncLanding landing);
// The schedule in force as RINGTRAIN_EMU_SCHEDULE spells it ("shuffle:7+random"), for reports.
std::string schedule_description();

// The architecture whose launch limits the emulator enforces: sm_80 (A100: at most 163 KiB of
// static + dynamic shared memory per block after opt-in) or sm_90a (H100: 227 KiB). Default:
// RINGTRAIN_EMU_ARCH=sm_80|sm_90a, else sm_80, the stricter of the two we ship (CI runs the
// GPU tests under both). No effect on a real device.
enum class Arch { kSm80, kSm90a };
void set_emulated_arch(Arch arch);
Arch emulated_arch();
const char* arch_name(Arch arch);

// How the emulator runs work issued on streams. kEager (default): at issue, in issue order —
// always a valid order. kDeferred: each created stream keeps its work until something waits
// for it (stream/event/device synchronize, a stream waiting on an event recorded there), then
// device-wide syncs drain streams in the order of the current schedule; so a consumer that
// forgot to wait on its producer's event reads stale or poisoned data. The default stream and
// the synchronous memcpy/memset run at issue (streams are non-blocking, as created on the
// device). Also RINGTRAIN_EMU_STREAMS=deferred. No effect on a real device.
enum class StreamMode { kEager, kDeferred };
void set_stream_mode(StreamMode mode);
StreamMode current_stream_mode();

// A record of what was enqueued on which stream, in issue order (emulated device only), so a
// test can check that communication is issued before the compute it overlaps.
struct TraceEntry {
  int stream_id;     // 0: default stream, then 1, 2, ... in creation order
  std::string what;  // "launch <kernel>", "memcpy", "event_record #3", "nccl send", ...
};
void trace_start();
std::vector<TraceEntry> trace_stop();
// Id of a stream as it appears in the trace.
int stream_id(Stream stream);
// Adds a line to the trace (the NCCL layer uses it).
void trace_note(Stream stream, const std::string& what);

// ---------------------------------------------------------------------------------------
// Launching: launch(kernel, grid, block, smem_bytes, stream, args...). Arguments convert to
// the kernel's parameter types as they would through <<<>>>. Returns the launch's error
// (cudaErrorInvalidConfiguration for a block of more than 1024 threads, ...). Emulated, the
// kernel runs before launch returns (eager streams, the default) or when its stream is
// drained (deferred streams); a kernel fault (out-of-bounds, deadlock at a barrier, mismatched
// warp operation) throws ringtrain::Error naming the kernel, block, thread and schedule.

namespace detail {
#if defined(RINGTRAIN_GPU_EMULATE)
// Type-erased kernel body: calls the kernel with this CUDA thread's copy of the arguments.
struct KernelBody {
  void (*call)(const void* params);
  std::shared_ptr<const void> params;  // kept alive until the (possibly deferred) launch ran
};
Status launch_emulated(const void* kernel, const char* kernel_name, dim3 grid, dim3 block,
                      size_t smem_bytes, Stream stream, KernelBody body);
#endif
Status check_launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes);
std::string kernel_name(const void* kernel);
}  // namespace detail

template <typename... P, typename... A>
Status launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem_bytes, Stream stream,
             A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: argument count differs from the kernel's");
  using Params = std::tuple<std::decay_t<P>...>;
  Params params(std::forward<A>(args)...);
#if defined(RINGTRAIN_GPU_EMULATE)
  struct Packed {
    void (*fn)(P...);
    Params params;
    static void run(const void* p) {
      const Packed* pk = static_cast<const Packed*>(p);
      Params mine = pk->params;  // each CUDA thread gets its own copy, as on the device
      std::apply(pk->fn, mine);
    }
  };
  auto packed = std::make_shared<const Packed>(Packed{kernel, std::move(params)});
  return detail::launch_emulated(reinterpret_cast<const void*>(kernel), nullptr, grid, block,
                                 smem_bytes, stream, detail::KernelBody{&Packed::run, packed});
#else
  const void* key = reinterpret_cast<const void*>(kernel);
  void* argv[sizeof...(P) + 1] = {};
  std::apply([&argv](auto&... v) {
    int i = 0;
    ((argv[i++] = static_cast<void*>(&v)), ...);
  }, params);
  return static_cast<Status>(cudaLaunchKernel(key, grid, block, argv, smem_bytes, stream));
#endif
}

[[noreturn]] void gpu_failed(Status e, const char* call, const char* file, int line);

}  // namespace ringtrain::gpu

// CUDA_CHECK(call): every GPU-layer call, naming the call, file and line on failure.
#define CUDA_CHECK(call)                                                                \
  do {                                                                                  \
    ::ringtrain::gpu::Status rt_gpu_e_ = (call);                                         \
    if (rt_gpu_e_ != ::ringtrain::gpu::Status::kSuccess)                                 \
      ::ringtrain::gpu::gpu_failed(rt_gpu_e_, #call, __FILE__, __LINE__);               \
  } while (0)
