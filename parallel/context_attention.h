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

#include "kernels/attention.h"
#include "parallel/communicator.h"

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
};

// Shapes for one rank: b samples, s_local tokens each, h_local query heads, h_kv_local
// kv heads, head dim d. q/out/dout/dq: [b, s_local, h, d]; k/v/dk/dv: [b, s_local, h_kv, d].
struct LocalAttentionShape {
  int b = 1, s_local = 0, h = 1, h_kv = 1, d = 0;
};

// What backward needs from forward, in the frame the attention actually ran in (after the
// Ulysses all-to-all: the gathered sequence with a slice of the heads).
struct ContextAttentionSaved {
  std::vector<float> lse;  // [b, h', s'] of the frame
  std::vector<float> out;  // out in the frame (Ulysses: head-sharded); ring/none: empty (use out)
};

void context_attention_forward(const ContextAttention& ctx, const LocalAttentionShape& shape,
                               const float* q, const float* k, const float* v, float* out,
                               ContextAttentionSaved* saved);
// Overwrites dq, dk, dv.
void context_attention_backward(const ContextAttention& ctx, const LocalAttentionShape& shape,
                                const float* q, const float* k, const float* v, const float* out,
                                const float* dout, const ContextAttentionSaved& saved, float* dq,
                                float* dk, float* dv);

}  // namespace ringtrain
