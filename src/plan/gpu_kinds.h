// The accelerators a plan can be made for, one table (gpu_kinds.cpp) with where each figure
// comes from. `cpu` is this backend's host: no device memory limit, fp32 only.
#pragma once

#include <string>
#include <vector>

namespace ringtrain {

struct GpuKind {
  std::string name;     // as --gpu spells it: h100, h200, a100, b200, cpu
  double memory_bytes;  // usable device memory; 0: the host (no device limit)
  std::string source;   // provenance of the figures
  bool host() const { return memory_bytes == 0; }
};

const std::vector<GpuKind>& gpu_kinds();
// The kind named `name`; an input error naming the known kinds otherwise.
const GpuKind& gpu_kind(const std::string& name);

}  // namespace ringtrain
