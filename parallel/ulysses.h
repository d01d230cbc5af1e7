// Ulysses sequence parallelism (Jacobs et al., DeepSpeed-Ulysses, 2023): one all-to-all turns
// u sequence shards with all heads into the whole (gathered) sequence with h/u heads, so
// attention runs locally; a second all-to-all turns the output back.
#pragma once

#include "kernels/backend.h"
#include "src/core/communicator.h"

namespace ringtrain {

// The all-to-all staging buffers (device memory), reused from call to call.
struct UlyssesBuffers {
  Tensor send, recv;
};

// local[b, s, h, d] on each of the u members -> frame[b, u*s, h/u, d]: member j gets head
// slice j of every member's tokens, member i's tokens at rows [i*s, (i+1)*s). Buffers are
// the backend's device memory; `group` communicates on it.
void ulysses_to_frame(Communicator& group, Backend& be, UlyssesBuffers& buf, int b, int s, int h, int d, const float* local,
                      float* frame);
// The inverse: frame[b, u*s, h/u, d] -> local[b, s, h, d].
void ulysses_from_frame(Communicator& group, Backend& be, UlyssesBuffers& buf, int b, int s, int h, int d, const float* frame,
                        float* local);

}  // namespace ringtrain
