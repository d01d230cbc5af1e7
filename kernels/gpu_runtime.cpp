#include "kernels/gpu_runtime.h"

namespace ringtrain {
namespace {
const GpuRuntime* g_runtime = nullptr;
}  // namespace

void set_gpu_runtime(const GpuRuntime* runtime) { g_runtime = runtime; }
const GpuRuntime* gpu_runtime() { return g_runtime; }

}  // namespace ringtrain
