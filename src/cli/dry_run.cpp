#include "src/cli/dry_run.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "parallel/mesh.h"
#include "src/cli/plan.h"
#include "src/core/error.h"
#include "src/model/llama.h"
#include "src/plan/memory.h"
#include "src/train/compute.h"

namespace ringtrain {
namespace {

// A dry run plans the device the config names: a GPU job is planned as an H100's (bf16 copies
// when train.precision is bf16), a CPU job as the CPU backend's.
const GpuKind& dry_run_kind(const Config& c) { return gpu_kind(c.device == DeviceChoice::kCpu ? "cpu" : "h100"); }

}  // namespace

void print_dry_run_plan(const Config& c) {
  std::printf("planned on one process (launch dp*cp*tp ranks to see where each rank runs):\n%s",
              plan_text(c, plan_target(dry_run_kind(c))).c_str());
}

void print_dry_run(const Config& c, Mesh& mesh) {
  constexpr int kHost = 64;
  char host[kHost] = {};
  gethostname(host, kHost - 1);
  std::vector<char> hosts(static_cast<size_t>(kHost) * mesh.size());
  std::vector<int> locals(static_cast<size_t>(mesh.size()));
  int local = mesh.local_rank();
  MPI_CHECK(MPI_Gather(host, kHost, MPI_CHAR, hosts.data(), kHost, MPI_CHAR, 0, mesh.world_comm()));
  MPI_CHECK(MPI_Gather(&local, 1, MPI_INT, locals.data(), 1, MPI_INT, 0, mesh.world_comm()));

  Compute compute(c, mesh, /*force_cpu=*/true);  // shapes only: weights are never initialized
  LlamaModel model(c, mesh, compute.backend(), compute.groups(), /*shapes_only=*/true);
  double global_params = 0;
  for (const Param& p : model.params().params()) global_params += static_cast<double>(shape_numel(p.info.global_shape));
  if (mesh.rank() != 0) return;

  std::printf("mesh: %d ranks\n", mesh.size());
  for (int r = 0; r < mesh.size(); ++r)
    std::printf("  %s host %s local rank %d gpu %d\n", mesh.describe_rank(r).c_str(), &hosts[static_cast<size_t>(r) * kHost],
                locals[static_cast<size_t>(r)], locals[static_cast<size_t>(r)]);
  // The one accounting (src/plan/memory.h); the model just registered is its check.
  const MemoryPlan plan = plan_memory(c, c.device != DeviceChoice::kCpu);
  RT_CHECK(plan.params_local == model.params().used() && plan.params_padded == model.params().size() &&
               plan.params_global == static_cast<int64_t>(global_params),
           "the memory plan counts ", plan.params_local, " parameters on this rank (", plan.params_padded,
           " padded), the model registered ", model.params().used(), " (", model.params().size(), ")");
  std::printf("%s", plan_text(c, plan_target(dry_run_kind(c))).c_str());
}

}  // namespace ringtrain
