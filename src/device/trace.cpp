// The operation trace of the GPU layer (both builds): what was issued on which stream, in
// order (launches, copies, event records and waits, NCCL calls), between trace_start and
// trace_stop. Stream ids come from each build's stream_id.
#include <mutex>
#include <string>
#include <vector>

#include "src/device/gpu.h"

namespace ringtrain::gpu {
namespace {
std::mutex g_trace_mu;
bool g_tracing = false;
std::vector<TraceEntry> g_trace;
}  // namespace

void trace_start() {
  std::lock_guard<std::mutex> lock(g_trace_mu);
  g_trace.clear();
  g_tracing = true;
}
std::vector<TraceEntry> trace_stop() {
  std::lock_guard<std::mutex> lock(g_trace_mu);
  g_tracing = false;
  return std::move(g_trace);
}
void trace_note(Stream stream, const std::string& what) {
  std::lock_guard<std::mutex> lock(g_trace_mu);
  if (g_tracing) g_trace.push_back({stream_id(stream), what});
}

}  // namespace ringtrain::gpu
