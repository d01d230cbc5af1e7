#include "src/train/compute.h"

#include <algorithm>

#include "src/core/error.h"

namespace ringtrain {
DeviceChoice resolve_device(const Config& config) {
  const GpuRuntime* rt = gpu_runtime();
  const int count = rt ? rt->device_count() : 0;
  if (config.device == DeviceChoice::kCpu) return DeviceChoice::kCpu;
  if (config.device == DeviceChoice::kAuto)
    return rt && !rt->emulated && count > 0 ? DeviceChoice::kCuda : DeviceChoice::kCpu;
  RT_INPUT_CHECK(rt != nullptr, "device: cuda, but this binary was built without the GPU layer "
                                "(configure with -DRINGTRAIN_GPU=cuda, or emulate for the emulated device)");
  RT_INPUT_CHECK(count > 0, "device: cuda, but no CUDA device is visible to this process");
  return DeviceChoice::kCuda;
}

Compute::Compute(const Config& config, Mesh& mesh, bool force_cpu) {
  const Precision precision = config.train.precision == TrainPrecision::kBf16 ? Precision::kBF16 : Precision::kF32;
  const DeviceChoice device = force_cpu ? DeviceChoice::kCpu : resolve_device(config);
  if (device == DeviceChoice::kCpu) {
    backend_ = make_cpu_backend(precision);
    groups_ = mesh.host_groups();
    description_ = "cpu";
    return;
  }
  const GpuRuntime& rt = *gpu_runtime();
  const int count = rt.device_count();
  const int index = mesh.local_rank() % count;
  backend_ = rt.make_backend(precision, index);
  // NCCL allows one process per GPU; when processes of this node share one (more processes than
  // visible GPUs, or a launcher that showed several processes the same GPU), the
  // communicators stage through host memory and MPI instead. The ranks of the node compare the
  // PCI ids of their GPUs, which also covers launchers that show each rank one GPU.
  int id[3] = {0, 0, 0};
  rt.pci_id(index, id);
  std::vector<int> ids(3 * static_cast<size_t>(mesh.local_size()));
  MPI_CHECK(MPI_Allgather(id, 3, MPI_INT, ids.data(), 3, MPI_INT, mesh.node_comm()));
  int sharing = 1;  // processes of this node on this rank's GPU
  for (int r = 0; r < mesh.local_size(); ++r)
    if (r != mesh.local_rank() && std::equal(id, id + 3, ids.begin() + 3 * r)) ++sharing;
  int worst = sharing;
  MPI_CHECK(MPI_Allreduce(&sharing, &worst, 1, MPI_INT, MPI_MAX, mesh.world_comm()));
  const DeviceComm choice = config.parallel.device_comm;
  const bool one_per_gpu = worst == 1;
  RT_INPUT_CHECK(choice != DeviceComm::kNccl || one_per_gpu, "parallel.device_comm: nccl needs one process per GPU, but ",
                 worst, " processes share a GPU (", mesh.local_size(), " processes, ", count,
                 " visible GPU(s) on this node); use staged or auto");
  const bool nccl = choice == DeviceComm::kNccl || (choice == DeviceComm::kAuto && one_per_gpu);
  auto make = [&](MPI_Comm comm) {
    comms_.push_back(rt.make_communicator(comm, *backend_, nccl));
    return comms_.back().get();
  };
  groups_.tp = make(mesh.tp_comm());
  groups_.cp = make(mesh.cp_comm());
  groups_.dp = make(mesh.dp_comm());
  groups_.dp_cp = make(mesh.dp_cp_comm());
  groups_.ulysses = make(mesh.cp_ulysses_comm());
  groups_.ring = make(mesh.cp_ring_comm());
  description_ = backend_->describe() + (nccl ? " via NCCL" : " via staged MPI");
}

Compute::~Compute() {
  if (backend_) backend_->synchronize();
  comms_.clear();
}

}  // namespace ringtrain
