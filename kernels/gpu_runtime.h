// Where a build with the GPU layer makes its CUDA backend known: the layer above (the trainer's
// Compute, src/train/compute.h) asks here for devices, backends and device communicators,
// so that the kernel layer never needs to know who uses it.
#pragma once

#include <memory>

#include <mpi.h>

#include "kernels/backend.h"
#include "src/core/communicator.h"

namespace ringtrain {

// What the GPU build provides (kernels/cuda/backend_cuda.cpp; register_cuda_runtime() puts it
// here). Null in a build without the GPU layer.
struct GpuRuntime {
  bool emulated = false;  // the emulated device: never chosen by device: auto
  int (*device_count)() = nullptr;
  // PCI domain, bus and device of device `index`: processes with equal ids share a GPU.
  void (*pci_id)(int index, int id[3]) = nullptr;
  // The CUDA backend on device `index` (the process's GPU, chosen from its local rank).
  std::unique_ptr<Backend> (*make_backend)(Precision precision, int index) = nullptr;
  // A communicator over `comm` for the backend's device memory: NCCL (nccl = true) or staged
  // through host memory and MPI; both ordered against the backend's compute stream.
  std::unique_ptr<Communicator> (*make_communicator)(MPI_Comm comm, Backend& backend, bool nccl) = nullptr;
};
void set_gpu_runtime(const GpuRuntime* runtime);
const GpuRuntime* gpu_runtime();

}  // namespace ringtrain
