// The GPU layer on a real device: thin wrappers over the CUDA runtime. Status values are
// cudaError_t's, so the wrappers only convert.
#include <cuda_runtime.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/device/gpu.h"

namespace ringtrain::gpu {

namespace {
thread_local std::string tl_detail;
Status conv(cudaError_t e) {
  if (e != cudaSuccess) tl_detail = cudaGetErrorString(e);
  return static_cast<Status>(e);
}
Schedule g_schedule = Schedule::kAscending;
uint64_t g_seed = 1;
CpAsyncLanding g_landing = CpAsyncLanding::kLazy;
}  // namespace

static_assert(static_cast<int>(Status::kInvalidConfiguration) == cudaErrorInvalidConfiguration);
static_assert(static_cast<int>(Status::kInvalidValue) == cudaErrorInvalidValue);
static_assert(static_cast<int>(Status::kNotReady) == cudaErrorNotReady);
static_assert(static_cast<int>(Status::kIllegalAddress) == cudaErrorIllegalAddress);
static_assert(static_cast<int>(Status::kLaunchFailure) == cudaErrorLaunchFailure);
static_assert(static_cast<int>(CopyKind::kDefault) == cudaMemcpyDefault);
static_assert(static_cast<int>(CopyKind::kDeviceToHost) == cudaMemcpyDeviceToHost);

const char* error_name(Status e) { return cudaGetErrorName(static_cast<cudaError_t>(e)); }
std::string last_error_detail() { return tl_detail; }

void gpu_failed(Status e, const char* call, const char* file, int line) {
  const std::string detail = last_error_detail();
  ringtrain::fault(call, " failed: ", error_name(e), detail.empty() ? "" : " (", detail, detail.empty() ? "" : ")",
                   " at ", file, ":", line);
}

Status get_device_count(int* count) { return conv(cudaGetDeviceCount(count)); }
Status set_device(int device) { return conv(cudaSetDevice(device)); }
Status get_device(int* device) { return conv(cudaGetDevice(device)); }
Status get_device_properties(DeviceProps* p, int device) {
  cudaDeviceProp prop;
  const Status s = conv(cudaGetDeviceProperties(&prop, device));
  if (s != Status::kSuccess) return s;
  p->name = prop.name;
  p->major = prop.major;
  p->minor = prop.minor;
  p->total_memory = prop.totalGlobalMem;
  p->multiprocessors = prop.multiProcessorCount;
  p->max_threads_per_block = prop.maxThreadsPerBlock;
  p->shared_per_block = prop.sharedMemPerBlock;
  p->shared_per_block_optin = prop.sharedMemPerBlockOptin;
  p->warp_size = prop.warpSize;
  p->emulated = false;
  p->pci_domain = prop.pciDomainID;
  p->pci_bus = prop.pciBusID;
  p->pci_device = prop.pciDeviceID;
  return Status::kSuccess;
}
Status device_synchronize() { return conv(cudaDeviceSynchronize()); }
Status get_last_error() { return conv(cudaGetLastError()); }
Status mem_get_info(size_t* free_bytes, size_t* total_bytes) { return conv(cudaMemGetInfo(free_bytes, total_bytes)); }

Status device_alloc(void** ptr, size_t bytes) { return conv(cudaMalloc(ptr, bytes)); }
Status device_free(void* ptr) { return conv(cudaFree(ptr)); }
Status host_alloc_pinned(void** ptr, size_t bytes) { return conv(cudaMallocHost(ptr, bytes)); }
Status host_free_pinned(void* ptr) { return conv(cudaFreeHost(ptr)); }
Status memcpy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  return conv(cudaMemcpy(dst, src, bytes, static_cast<cudaMemcpyKind>(kind)));
}
Status memcpy_async(void* dst, const void* src, size_t bytes, CopyKind kind, Stream stream) {
  trace_note(stream, "memcpy " + std::to_string(bytes));
  return conv(cudaMemcpyAsync(dst, src, bytes, static_cast<cudaMemcpyKind>(kind), stream));
}
Status memset(void* ptr, int value, size_t bytes) { return conv(cudaMemset(ptr, value, bytes)); }
Status memset_async(void* ptr, int value, size_t bytes, Stream stream) {
  trace_note(stream, "memset " + std::to_string(bytes));
  return conv(cudaMemsetAsync(ptr, value, bytes, stream));
}
bool is_device_pointer(const void* ptr) {
  cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice;
}

Status stream_create(Stream* stream) { return conv(cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking)); }
Status stream_destroy(Stream stream) { return conv(cudaStreamDestroy(stream)); }
Status stream_synchronize(Stream stream) { return conv(cudaStreamSynchronize(stream)); }
Status stream_wait_event(Stream stream, Event event) {
  trace_note(stream, "wait_event");
  return conv(cudaStreamWaitEvent(stream, event, 0));
}
Status event_create(Event* event) { return conv(cudaEventCreate(event)); }
Status event_destroy(Event event) { return conv(cudaEventDestroy(event)); }
Status event_record(Event event, Stream stream) {
  trace_note(stream, "event_record");
  return conv(cudaEventRecord(event, stream));
}
Status event_query(Event event) { return static_cast<Status>(cudaEventQuery(event)); }
Status event_synchronize(Event event) { return conv(cudaEventSynchronize(event)); }
Status event_elapsed_ms(float* ms, Event start, Event end) { return conv(cudaEventElapsedTime(ms, start, end)); }

Status func_set_max_dynamic_smem(const void* kernel, int bytes) {
  return conv(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

void set_schedule(Schedule schedule, uint64_t seed, CpAsyncLanding landing) {
  g_schedule = schedule;
  g_seed = seed;
  g_landing = landing;
}
Schedule current_schedule() { return g_schedule; }
uint64_t current_schedule_seed() { return g_seed; }
CpAsyncLanding current_cp_async_landing() { return g_landing; }
std::string schedule_description() { return "the device's own"; }

void set_emulated_arch(Arch) {}
Arch emulated_arch() { return Arch::kSm90a; }

void set_stream_mode(StreamMode) {}
StreamMode current_stream_mode() { return StreamMode::kEager; }

int stream_id(Stream stream) {
  // Real streams have no small ids; the handle's address, stable for the stream's lifetime.
  return static_cast<int>(reinterpret_cast<uintptr_t>(stream) & 0x7fffffff);
}

namespace detail {
Status check_launch(const void*, dim3, dim3, size_t) { return Status::kSuccess; }  // the runtime checks
std::string kernel_name(const void* kernel) {
  Dl_info info{};
  if (dladdr(kernel, &info) && info.dli_sname) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> dem(abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status), std::free);
    return status == 0 && dem ? dem.get() : info.dli_sname;
  }
  return "kernel";
}
}  // namespace detail

}  // namespace ringtrain::gpu
