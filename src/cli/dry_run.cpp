#include "src/cli/dry_run.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "parallel/mesh.h"
#include "src/core/error.h"
#include "src/model/llama.h"
#include "src/train/compute.h"

namespace ringtrain {

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
  double local_params = static_cast<double>(model.params().used()), global_params = 0;
  for (const Param& p : model.params().params()) global_params += static_cast<double>(shape_numel(p.info.global_shape));
  if (mesh.rank() != 0) return;

  std::printf("mesh: %d ranks = dp %d x cp %d x tp %d (cp_mode %s)\n", mesh.size(), mesh.shape().dp,
              mesh.shape().cp, mesh.shape().tp, to_string(c.parallel.cp_mode).c_str());
  for (int r = 0; r < mesh.size(); ++r)
    std::printf("  %s host %s local rank %d gpu %d\n", mesh.describe_rank(r).c_str(), &hosts[static_cast<size_t>(r) * kHost],
                locals[static_cast<size_t>(r)], locals[static_cast<size_t>(r)]);
  const ModelShape& s = model.shape();
  const int dp = mesh.shape().dp, cp = mesh.shape().cp, tp = mesh.shape().tp;
  const double opt_elems = c.parallel.zero1 ? static_cast<double>(model.params().size()) / dp : static_cast<double>(model.params().size());
  // Activations kept for backward per layer and token row (fp32): inputs of both norms, the
  // gathered norm outputs, q/k/v/attention out, gate/up/act, plus the lse.
  const double rows = static_cast<double>(c.train.micro_batch) * c.train.seq_len / cp;
  const double held = c.parallel.sequence_parallel ? rows / tp : rows;
  const double per_layer = held * s.d * 2 + rows * s.d * 2 +
                           rows * s.head_dim * (2.0 * s.heads_local() + 2.0 * s.kv_local()) +
                           rows * 3.0 * s.ffn_local() + rows * s.heads_local();
  const double layers_kept = c.train.recompute ? 1 : s.layers;
  const double act = 4.0 * (per_layer * layers_kept + held * s.d * (s.layers + 1) + rows * (s.vocab_local() + 2.0 * s.d));
  const double mib = 1.0 / 1048576.0;
  std::printf("parameters: %.0f global, %.0f on this rank (tp shard)\n", global_params, local_params);
  std::printf("memory per rank (estimate, fp32): weights %.1f MiB, gradients %.1f MiB, AdamW moments %.1f MiB%s, activations %.1f MiB%s\n",
              4 * local_params * mib, 4 * local_params * mib, 8 * opt_elems * mib, c.parallel.zero1 ? " (ZeRO-1 shard)" : "",
              act * mib, c.train.recompute ? " (recompute)" : "");
  // A GPU step in bf16 adds the bf16 copies of the weights (2 bytes each) and bf16 operand
  // scratch (the largest activation, 2 bytes per element).
  const bool gpu_bf16 = c.device != DeviceChoice::kCpu && c.train.precision == TrainPrecision::kBf16;
  const double bf16_extra = gpu_bf16 ? 2 * local_params + 2 * rows * std::max<double>(s.ffn_local(), s.vocab_local()) : 0;
  if (gpu_bf16) std::printf("bf16 on a GPU: weight copies and operand scratch %.1f MiB\n", bf16_extra * mib);
  std::printf("total per rank: %.1f MiB\n", (8 * local_params + 8 * opt_elems + act + bf16_extra) * mib);
}

}  // namespace ringtrain
