// The accelerators a plan can be made for, one table (gpu_kinds.cpp) with where each figure
// comes from: memory, the achievable rate of each op class the step-time model charges
// (src/plan/step_time.h), and the links between them. `cpu` is this backend's host: no device
// memory limit, fp32 only, its rates measured on this project's own machine.
#pragma once

#include <string>
#include <vector>

namespace ringtrain {

struct GpuKind {
  std::string name;     // as --gpu spells it: h100, h200, a100, b200, cpu
  double memory_bytes;  // usable device memory; 0: the host (no device limit)
  std::string source;   // provenance of the memory figure
  // Rates, TFLOP/s per device: the dense peak MFU is quoted against (bf16 tensor cores; the
  // cpu: its fp32 GEMM rate), what a large GEMM achieves, and the flash attention forward and
  // backward (FLOPs counted as FlashAttention counts them: 4 s^2 d per head forward, causal
  // half, backward 2.5x forward).
  double peak_tflops;
  double gemm_tflops;
  double attn_fwd_tflops;
  double attn_bwd_tflops;
  // Links, GB/s per device and direction (1 GB = 1e9 bytes): inside a node (NVLink; the cpu:
  // MPI over shared memory) and between nodes (the device's share of the node's network), and
  // the start-up cost of one message, microseconds.
  double intra_gbps;
  double inter_gbps;
  double latency_us;
  // Transfers move while the device computes (NCCL on its own stream): the ring's hops and the
  // gradient all-reduce can hide. false on the host: Open MPI there has no progress thread
  // ("OMPI progress: no" in ompi_info), so a nonblocking transfer moves only inside MPI calls
  // and every byte adds to the step.
  bool async_progress;
  std::string rates_source;  // provenance of the rates and links
  bool host() const { return memory_bytes == 0; }
};

const std::vector<GpuKind>& gpu_kinds();
// The kind named `name`; an input error naming the known kinds otherwise.
const GpuKind& gpu_kind(const std::string& name);

}  // namespace ringtrain
