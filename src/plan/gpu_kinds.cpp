#include "src/plan/gpu_kinds.h"

#include "src/config/suggest.h"
#include "src/core/error.h"

namespace ringtrain {

const std::vector<GpuKind>& gpu_kinds() {
  // The datasheet capacity (GB = 1e9 bytes), a little below what the driver reports (an
  // "80 GB" H100 shows 81559 MiB in nvidia-smi); the CUDA context and NCCL take some of it.
  static const std::vector<GpuKind> kinds = {
      {"h100", 80e9, "NVIDIA H100 SXM5 datasheet: 80 GB HBM3"},
      {"h200", 141e9, "NVIDIA H200 SXM datasheet: 141 GB HBM3e"},
      {"a100", 80e9, "NVIDIA A100 SXM4 datasheet: 80 GB HBM2e"},
      {"b200", 180e9, "NVIDIA DGX B200 datasheet: 1440 GB over 8 GPUs"},
      {"cpu", 0.0, "the CPU backend: host memory, no device limit"},
  };
  return kinds;
}

const GpuKind& gpu_kind(const std::string& name) {
  std::vector<std::string> names;
  for (const GpuKind& k : gpu_kinds()) {
    if (k.name == name) return k;
    names.push_back(k.name);
  }
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  input_error("--gpu: unknown GPU kind '", name, "'", did_you_mean(name, names), "; known: ", known);
}

}  // namespace ringtrain
