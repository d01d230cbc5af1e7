// Ring attention over one communicator (see ring_attention.cpp for the algorithm).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "parallel/communicator.h"

namespace ringtrain {

struct RingShape {
  int b = 1, s = 0, h = 1, h_kv = 1, d = 0;  // this rank's block: s tokens per sample
  bool causal = true;
};

// key_positions[j] = global positions of ring member j's tokens (s each).
// steps: how many ring members to visit (ring size for full attention; 1 = own block only).
void ring_attention_forward(Communicator& ring, const RingShape& shape,
                            const std::vector<std::vector<int32_t>>& key_positions, int steps,
                            const float* q, const float* k, const float* v, float* out,
                            float* lse);
void ring_attention_backward(Communicator& ring, const RingShape& shape,
                             const std::vector<std::vector<int32_t>>& key_positions, int steps,
                             const float* q, const float* k, const float* v, const float* out,
                             const float* dout, const float* lse, float* dq, float* dk, float* dv);

}  // namespace ringtrain
