// The compute device of one process and the communicators that carry its tensors: what
// `device:` in the config chooses. The CPU backend uses the mesh's MPI communicators; a CUDA
// backend (real or emulated device) gets NCCL communicators, or staged-MPI ones when several
// processes share one GPU, ordered against its compute stream.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "kernels/backend.h"
#include "kernels/gpu_runtime.h"
#include "parallel/mesh.h"
#include "src/config/config.h"

namespace ringtrain {

class Compute {
 public:
  // Collective over the mesh (communicators are created for every group). `force_cpu` for
  // tools that only need shapes (--dry-run).
  Compute(const Config& config, Mesh& mesh, bool force_cpu = false);
  ~Compute();
  Backend& backend() { return *backend_; }
  const TensorGroups& groups() const { return groups_; }
  // "cpu" or "cuda:0 (...) via nccl"
  const std::string& describe() const { return description_; }

 private:
  std::unique_ptr<Backend> backend_;
  std::vector<std::unique_ptr<Communicator>> comms_;  // destroyed before the backend
  TensorGroups groups_;
  std::string description_;
};

// The device `device: auto|cpu|cuda` resolves to in this binary on this machine (kCpu or
// kCuda); a clear input error when cuda is asked for and unavailable.
DeviceChoice resolve_device(const Config& config);

}  // namespace ringtrain
