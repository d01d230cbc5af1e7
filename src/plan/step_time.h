// The time of one optimizer step on a GPU kind, from the config alone: compute as FLOPs over
// the kind's achievable rate per op class, communication as bytes over the link the group
// crosses plus a start-up per message, and only the overlap the step really has:
//   - each ring hop (K|V forward; K|V and the dK|dV accumulator backward) is posted before one
//     block's attention and waited on after it (parallel/ring_attention.cpp): a hop costs
//     max(0, transfer - that block's attention); the hop that brings dK|dV home overlaps nothing;
//   - the gradient all-reduce runs per bucket (the head, each layer, the embedding) as soon as
//     the last micro-batch's backward has produced it (Optimizer::grads_ready), on one channel
//     behind the rest of that backward; only what outlasts the backward is exposed;
//   - ZeRO-3's unit gathers and reduce-scatters run on one channel (src/plan/unit_pipeline.h):
//     each gather hides behind the one unit computing while it moves, the pass's first gather
//     behind nothing, every message pays its latency;
//   - nothing else overlaps: tensor-parallel collectives, Ulysses all-to-alls and ZeRO-1's
//     reduce-scatter and all-gather are blocking and sit on the critical path;
//   - on the host (GpuKind::async_progress false) not even those two: MPI moves a nonblocking
//     transfer only inside MPI calls.
// A group's link: the node's (intra) when all of the group's members share a node (the mesh
// puts tp innermost, then the Ulysses, then the ring members, then dp: parallel/mesh.h), the
// network (inter) otherwise. Bytes are comm.h's payloads times the collective's wire factor
// (ring all-reduce 2 (n-1)/n, reduce-scatter and all-gather (n-1)/n, all-to-all (n-1)/n).
// Not modelled: element-wise kernels (norms, RoPE, SwiGLU, AdamW), the data pipeline, kernel
// launch gaps; the achievable rates are meant to absorb them.
#pragma once

#include <string>

#include "src/config/config.h"
#include "src/plan/gpu_kinds.h"

namespace ringtrain {

struct Cluster {
  int gpus_per_node = 8;
};

struct StepTime {
  // Seconds per step on each rank.
  double gemm = 0, attention_forward = 0, attention_backward = 0;  // compute
  double tp = 0;              // tensor-parallel collectives (exposed)
  double ulysses = 0;         // all-to-alls (exposed)
  double ring = 0;            // ring hops, in total
  double ring_exposed = 0;    // what the blocks' attention does not hide
  double grad_sync = 0;       // the bucketed all-reduce (dp x cp, or cp under ZeRO-1), in total
  double grad_sync_exposed = 0;
  double zero = 0;            // ZeRO's weight all-gathers over dp x cp (exposed)
  double scalars = 0;         // loss, token count, gradient norm; SP's norm-weight gradients (exposed)
  double step = 0;
  double tokens_per_s = 0;          // the whole job
  double tokens_per_s_per_gpu = 0;
  double model_flops_per_token = 0; // as the trainer's MFU counts them (6 N + 6 L s d_attn)
  double mfu = 0;                   // against the kind's peak
  double compute() const { return gemm + attention_forward + attention_backward; }
  double exposed_comm() const { return tp + ulysses + ring_exposed + grad_sync_exposed + zero + scalars; }
};

StepTime plan_step_time(const Config& config, const GpuKind& kind, const Cluster& cluster);

// The breakdown as `plan` prints it, one component a line.
std::string describe_step_time(const StepTime& t, const GpuKind& kind, const Cluster& cluster);

}  // namespace ringtrain
