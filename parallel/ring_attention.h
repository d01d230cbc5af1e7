// Ring attention over one communicator (see ring_attention.cpp for the algorithm).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "parallel/communicator.h"

namespace ringtrain {

struct RingShape {
  int b = 1, s = 0, h = 1, h_kv = 1, d = 0;  // this rank's block: s tokens per sample
  bool causal = true;
};

// Global positions of every ring member's tokens (s each): on the host, where the ring decides
// which blocks are fully masked, and on the device, where the kernels read them.
struct RingPositions {
  const std::vector<std::vector<int32_t>>* host = nullptr;
  std::vector<const int32_t*> device;
};

// The ring's buffers (device memory), reused from call to call: a steady-state step
// allocates none.
struct RingBuffers {
  Tensor kv[2], block_out, block_lse, delta, mine, acc_out, acc_in;
  std::vector<P2POp> ops;
};

// steps: how many ring members to visit (ring size for full attention; 1 = own block only).
void ring_attention_forward(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& shape,
                            const RingPositions& positions, int steps, const float* q, const float* k,
                            const float* v, float* out, float* lse);
// Overwrites dq, dk, dv.
void ring_attention_backward(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& shape,
                             const RingPositions& positions, int steps, const float* q, const float* k,
                             const float* v, const float* out, const float* dout, const float* lse, float* dq,
                             float* dk, float* dv);

}  // namespace ringtrain
