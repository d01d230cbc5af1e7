// Attention over a sequence split across the cp group: the one entry point the model calls.
//   ring:    K/V blocks travel the cp ring (parallel/ring_attention.cpp)
//   ulysses: all-to-all to head-sharded full sequences, local attention, all-to-all back
//            (parallel/ulysses.cpp)
//   hybrid:  cp = ulysses x ring: all-to-all inside each ulysses group, then a ring across
//            the groups.
// With cp = 1 it is the flash kernel itself.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "parallel/communicator.h"
#include "parallel/ring_attention.h"
#include "parallel/ulysses.h"

namespace ringtrain {

enum class CpMode { kRing, kUlysses, kHybrid };

struct ContextAttention {
  CpMode mode = CpMode::kRing;
  Communicator* ring = nullptr;     // the ring's group (cp group, or the ring part in hybrid)
  Communicator* ulysses = nullptr;  // the all-to-all group (ulysses/hybrid); null otherwise
  // positions[m] = global positions of the tokens of cp member m (all members, in rank order
  // of the whole cp group): member m of the ring is cp rank m*ulysses_size + u.
  std::vector<std::vector<int32_t>> member_positions;
  bool cross_rank = true;  // false: attend only to this rank's own tokens (eval control)
  bool causal = true;
  Backend* backend = nullptr;  // computes; ring/ulysses communicate on its memory

  // Set by context_attention_prepare: each ring member's frame positions (the union of its
  // Ulysses group's tokens; the member's own without Ulysses) on the host and the device, and
  // the member positions on the device.
  std::vector<std::vector<int32_t>> frame_positions;
  std::vector<Tensor> frame_positions_dev, member_positions_dev;
  RingPositions ring_positions;  // the frames' positions as the ring takes them
  // Buffers reused from call to call (device memory).
  RingBuffers ring_buffers;
  UlyssesBuffers a2a;
  Tensor qf, kf, vf, dof, dqf, dkf, dvf, delta;
};

// After the fields above are set: derives the frame positions and uploads the positions.
void context_attention_prepare(ContextAttention& ctx, Backend& be);

// Shapes for one rank: b samples, s_local tokens each, h_local query heads, h_kv_local
// kv heads, head dim d. q/out/dout/dq: [b, s_local, h, d]; k/v/dk/dv: [b, s_local, h_kv, d].
struct LocalAttentionShape {
  int b = 1, s_local = 0, h = 1, h_kv = 1, d = 0;
};

// What backward needs from forward, in the frame the attention actually ran in (after the
// Ulysses all-to-all: the gathered sequence with a slice of the heads).
struct ContextAttentionSaved {
  Tensor lse;  // [b, h', s'] of the frame
  Tensor out;  // out in the frame (Ulysses: head-sharded); ring/none: unused (use out)
};

void context_attention_forward(ContextAttention& ctx, const LocalAttentionShape& shape,
                               const float* q, const float* k, const float* v, float* out,
                               ContextAttentionSaved* saved);
// Overwrites dq, dk, dv.
void context_attention_backward(ContextAttention& ctx, const LocalAttentionShape& shape,
                                const float* q, const float* k, const float* v, const float* out,
                                const float* dout, const ContextAttentionSaved& saved, float* dq,
                                float* dk, float* dv);

}  // namespace ringtrain
