// Bytes each rank sends per optimizer step, per mesh group, from the config alone: the payload
// of every collective and ring step as the caller hands it to the communicator (all-reduce: the
// buffer; reduce-scatter and all-gather: the full buffer; all-to-all: the local buffer; ring
// steps: the bytes sent), which is what bench/steps/pmpi_counter.h measures at the MPI layer.
// Bytes on the wire depend on the collective's algorithm (a ring all-reduce moves
// 2 (n-1)/n of its buffer per rank); the step-time model applies that factor, not this count.
//
// Per micro-batch (grad_accum of them per step), N = micro_batch * seq_len / cp token rows:
//   tp          Megatron all-reduces of N x d: after o and down in forward, before q/k/v and
//               gate/up in backward (4 per layer), the embedding's and the head input's (2);
//               sequence parallelism makes each a reduce-scatter + all-gather (8 per layer + 4);
//               recompute repeats the forward's (2 per layer, 4 with SP); the vocab-parallel
//               cross-entropy's max and (sum-exp, target) rows (3N).
//               Per step: the norm weights' gradients under SP ((2L+1) d; per micro-batch
//               under ZeRO-2), the gradient norm.
//   cp_ring     K|V (kv heads sent: the tp shard's, or Ulysses' duplicated ones) travel r-1
//               hops in forward; in backward r-1 again with dK|dV behind them (r-1) and one hop
//               home; recompute repeats the forward's r-1 (r = cp / ulysses_degree).
//   cp_ulysses  forward q, k, v to the head-sharded frame and the output back; backward q, k,
//               v, dout there and dq, dk, dv back (k and v with the duplicated kv heads when the
//               degree does not divide them); recompute repeats the forward's.
//   dp_cp       the token count and the loss (f64 each); without ZeRO the bucketed gradient
//               all-reduce (the tp shard's parameters); under ZeRO the bucketed reduce-scatter
//               of the padded flat buffer (ZeRO-1: once per step, ZeRO-2: per micro-batch),
//               its all-gather after the update and the gradient norm's two f64; ZeRO-3
//               gathers every unit per micro-batch instead (the layers twice unless kept for
//               the backward; on a GPU in bf16 all but the embedding at 2 bytes an element,
//               and the RMSNorm weights' all-reduce once per step).
// Packed documents and sliding windows: the ring travels as many hops as the farthest block
// any member of any sample still sees (parallel/attention_plan.h), so it could stop early; the
// count keeps all r-1 because in practice it does not. One document crossing a zigzag chunk
// boundary in the second half of a sequence (there the later chunk sits on the rank just
// before the earlier one's: its queries need keys n-1 hops away), or joining two segments of
// the document-aware split with the queries on the rank just before the keys, makes the whole
// ring travel; every packed mix bench_cp_balance measures (lognormal medians 256 to 4k tokens,
// the KJV's books, windows or none, cp 2 to 8: docs/BENCHMARKS.md) travels all of it under
// the zigzag. Packing saves compute (blocks and tiles no query sees), not bytes.
// Not modelled: checkpoints and evaluations.
#pragma once

#include <map>
#include <string>

#include "src/config/config.h"

namespace ringtrain {

// Group name (as the mesh names its communicators: tp, cp_ring, cp_ulysses, cp, dp, dp_cp) ->
// bytes per rank per step; groups that carry nothing are absent. `on_gpu`: the step runs on a
// GPU (ZeRO-3's bf16 gathers when train.precision is bf16); false: the CPU backend.
std::map<std::string, double> plan_comm_bytes(const Config& config, bool on_gpu);

}  // namespace ringtrain
