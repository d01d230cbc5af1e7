// Ring attention over one communicator (see ring_attention.cpp for the algorithm).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "src/core/communicator.h"

namespace ringtrain {

struct RingShape {
  int b = 1, s = 0, h = 1, h_kv = 1, d = 0;  // this rank's block: s tokens per sample
  bool causal = true;
};

// What the ring visits, decided on the host from every member's positions and document ids
// (parallel/attention_plan.h), the same on every member:
//   visible[q * n + k]: some query of member q can see some key of member k's block;
//   steps: hops each block travels, 1 + the farthest hop at which any member still sees the
//          visiting block (n for a plain causal ring; fewer when documents or a window keep
//          attention near home).
// The kernels read each member's positions and document ids in device memory.
struct RingPlan {
  int steps = 0;
  std::vector<uint8_t> visible;
  std::vector<const int32_t*> pos;  // [n] device int32[s]: global positions
  std::vector<const int32_t*> doc;  // [n] device int32[b, s]; empty: one document per sample
  int window = 0;                   // sliding window in positions; 0: none
};

// The ring's buffers (device memory), reused from call to call: a steady-state step
// allocates none.
struct RingBuffers {
  Tensor kv[2], block_out, block_lse, delta, mine, acc_out, acc_in;
  std::vector<P2POp> ops;
};

void ring_attention_forward(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& shape,
                            const RingPlan& plan, const float* q, const float* k, const float* v, float* out,
                            float* lse);
// Attention probabilities after ring_attention_forward (kernels/attention_probs.h): K alone
// travels the ring as in the forward (V is not needed), and each visible block adds its
// columns to rows, pooled and stats (accumulated, indexed by global position) through the
// final lse.
void ring_attention_probs(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& shape,
                          const RingPlan& plan, const AttentionProbsArgs& pa, const float* q, const float* k,
                          const float* lse, float* rows, float* pooled, float* stats);
// Overwrites dq, dk, dv.
void ring_attention_backward(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& shape,
                             const RingPlan& plan, const float* q, const float* k, const float* v, const float* out,
                             const float* dout, const float* lse, float* dq, float* dk, float* dv);

}  // namespace ringtrain
