// The emulated runtime's error state: the CUDA runtime's error names, the last error of each
// host thread (cudaGetLastError) and the detail the emulator adds to it (which allocation,
// which limit).
#include <string>

#include "src/core/error.h"
#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {
namespace emu {
namespace {
thread_local Status tl_last_error = Status::kSuccess;
thread_local std::string tl_last_detail;
}  // namespace

void set_last_error(Status e, const std::string& detail) {
  tl_last_error = e;
  tl_last_detail = detail;
}

Status fail(Status e, const std::string& detail) {
  set_last_error(e, detail);
  return e;
}
}  // namespace emu

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

Status get_last_error() {
  const Status e = emu::tl_last_error;
  emu::tl_last_error = Status::kSuccess;
  return e;
}

}  // namespace ringtrain::gpu
