// Memory per rank of a training step, from the config alone (no MPI world, nothing allocated):
// the one accounting behind `ringtrain plan` and `ringtrain train --dry-run`.
//
// The layout is the config's parallel section (dp, cp, tp, cp_mode, ulysses_degree,
// sequence_parallel, zero) and train.seq_len / micro_batch / recompute / precision; a planner
// that tries other layouts edits a copy of the config. Every tensor the step keeps is counted
// where the code sizes it: the parameter store (src/model/params.h), the per-layer activations
// and step temporaries of src/model/llama.cpp, the ring and Ulysses buffers of
// parallel/ring_attention.cpp and parallel/context_attention.cpp, the AdamW moments of
// src/train/optimizer.cpp. Not counted: the process itself (libraries, MPI, the CUDA context),
// the data pipeline and the small per-row loss buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

struct MemoryPlan {
  int64_t params_global = 0;  // elements of the unsharded model
  int64_t params_local = 0;   // elements this rank holds (its tp shard)
  int64_t embed_unit = 0;     // the embedding's elements as the flat buffers hold them (padded)
  int64_t layer_unit = 0;     // one layer's
  int64_t head_unit = 0;      // the final norm's and (untied) the head's
  int64_t params_padded = 0;  // the flat buffers' length: each unit padded to a multiple of dp x cp under ZeRO
  // Bytes per rank.
  // The state, kept from step to step:
  double weights = 0;         // fp32 values (ZeRO-3: this rank's shard)
  double gradients = 0;       // fp32 gradients (ZeRO-1: the full buffer and the shard; ZeRO-2: the shard)
  double moments = 0;         // AdamW m and v (fp32), a 1/(dp x cp) shard under ZeRO
  double bf16_weights = 0;    // bf16 on a GPU: the bf16 copies of the weights (not under ZeRO-3)
  // ZeRO-2/3's unit buffers, the working set the state passes through: a few units' gathered
  // weights (and their bf16 copies on a GPU) and gradients with their reduced pieces. Sized by
  // the largest unit, not by the model, so it does not shrink with dp x cp.
  double zero_units = 0;
  double activations = 0;     // kept for backward (one layer's under recompute) and the head's
  double attention_buffers = 0;  // ring K/V double buffers and dK/dV accumulators, Ulysses frames
  double workspace = 0;       // step temporaries (and bf16 operand scratch on a GPU)
  double state() const { return weights + gradients + moments + bf16_weights; }
  double total() const {
    return state() + zero_units + activations + attention_buffers + workspace;
  }
};

// Whether ZeRO-3 gathers every unit but the embedding in bf16 (src/train/optimizer.h): on a
// GPU whose step is bf16. Those units' RMSNorm weights (norm_elements) then stay whole in fp32
// on every rank, rebuilt by one all-reduce per step.
bool zero3_gathers_bf16(const Config& config, bool on_gpu);
int64_t norm_elements(const Config& config);

// The plan of `config`'s layout. `on_gpu`: the step runs on a GPU (bf16 copies and scratch when
// train.precision is bf16); false: the CPU backend (fp32 only).
MemoryPlan plan_memory(const Config& config, bool on_gpu);

// The longest train.seq_len whose plan fits in `capacity` bytes per rank (on a GPU), keeping the
// rest of the config: a multiple of 2 * cp (the zigzag) and, under sequence parallelism, of
// cp * tp. 0 when even the shortest such length does not fit.
int max_seq_len(const Config& config, double capacity);
// The step between the lengths max_seq_len tries.
int seq_len_step(const Config& config);

// The breakdown as printed by `plan` and `--dry-run`, one component a line.
std::string describe_memory(const Config& config, const MemoryPlan& m);

}  // namespace ringtrain
