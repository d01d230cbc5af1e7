#include "src/plan/gpu_kinds.h"

#include "src/config/suggest.h"
#include "src/core/error.h"

namespace ringtrain {

namespace {

// Where the rates come from (none of ringtrain's CUDA kernels has been timed on a GPU yet:
// docs/BENCHMARKS.md, GPU section; when a GPU is at hand, bench_attention --device cuda's GEMM and
// flash forward/backward rates (the gpu bundle's `bench` stage) belong in its row, and
// `ringtrain plan --gemm-tflops/--attn-fwd-tflops/...` replaces any figure meanwhile):
//  - peak: the datasheet's dense bf16 tensor-core rate;
//  - GEMM: an 8192^3 bf16 cuBLAS product on this workplace's lent H100 (798 TFLOP/s) and H200
//    (788), .library/device KINDS.md; for the A100 and B200 their peak times the H100's
//    measured fraction (798 / 989 = 0.81);
//  - attention: FlashAttention-2, the algorithm kernels/cuda/attention.cu implements (Dao,
//    "FlashAttention-2", 2023: up to 73% of the A100's peak forward and 63% backward; Shah et
//    al., "FlashAttention-3", 2024: FlashAttention-2 reaches 35% of the H100's peak forward),
//    the backward at the same backward/forward ratio (63 / 73) on Hopper and Blackwell;
//  - links: NVLink per direction from the datasheets (A100 600 GB/s, H100/H200 900 GB/s,
//    B200 1.8 TB/s, both directions); between nodes one NIC per GPU as in the DGX reference
//    designs (A100: HDR 200 Gb/s = 25 GB/s; H100, H200, B200: NDR 400 Gb/s = 50 GB/s); the
//    per-message latency is an assumption of NCCL's order for small messages, not a measurement;
//  - cpu: this project's machine (the 2-core AMD EPYC VM, shared with other sessions), as its
//    multi-rank runs use it: 4 ranks on the 2 cores. One thread alone measures 40-45 GFLOP/s
//    in OpenBLAS sgemm and 35-36 forward, 46-50 backward in ringtrain's causal flash kernels at
//    1k-2k tokens (bench_attention); a least-squares fit of six 4-rank training steps
//    (bench_steps_step_time, dp/cp ring/Ulysses/tp/dp x tp/dp x cp) finds the ranks compute
//    2.73x slower than that (sharing cores with each other and the machine's load), each MPI
//    message costing 4.2 ms (a peer waits to be scheduled) and bytes moving at 0.31 GB/s. The
//    row is the one-thread rates / 2.73 and the fitted link. docs/BENCHMARKS.md has the runs.
constexpr const char* kGpuRates =
    "GEMM: 8192^3 bf16 cuBLAS on a lent H100/H200 (A100, B200: peak x 0.81); attention: FlashAttention-2's "
    "published fraction of peak; links: NVLink and one 200/400 Gb/s NIC per GPU (datasheets)";

}  // namespace

const std::vector<GpuKind>& gpu_kinds() {
  // Memory: the datasheet capacity (GB = 1e9 bytes), a little below what the driver reports
  // (an "80 GB" H100 shows 81559 MiB in nvidia-smi); the CUDA context and NCCL take some of it.
  static const std::vector<GpuKind> kinds = {
      {"h100", 80e9, "NVIDIA H100 SXM5 datasheet: 80 GB HBM3", 989, 798, 346, 299, 450, 50, 10, true, kGpuRates},
      {"h200", 141e9, "NVIDIA H200 SXM datasheet: 141 GB HBM3e", 989, 788, 346, 299, 450, 50, 10, true, kGpuRates},
      {"a100", 80e9, "NVIDIA A100 SXM4 datasheet: 80 GB HBM2e", 312, 252, 228, 197, 300, 25, 10, true, kGpuRates},
      {"b200", 180e9, "NVIDIA DGX B200 datasheet: 1440 GB over 8 GPUs", 2250, 1815, 788, 679, 900, 50, 10, true, kGpuRates},
      {"cpu", 0.0, "the CPU backend: host memory, no device limit", 0.0147, 0.0147, 0.0132, 0.0176, 0.31, 0.31, 4200,
       false, "this machine, a rank of 4 on its 2 shared cores: 1-thread benchmarks and 4-rank steps (docs/BENCHMARKS.md)"},
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
