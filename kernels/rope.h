// Rotary position embedding with the Hugging Face Llama convention ("rotate_half": dimension i
// pairs with i + d/2), angle = pos * theta^(-2i/d), from GLOBAL token positions so that a
// sequence split or reordered across ranks (zigzag) embeds exactly as the whole sequence.
#pragma once

#include <cstdint>

namespace ringtrain {

struct RopeArgs {
  int tokens = 0;     // rows (batch * local sequence)
  int heads = 0;      // heads in the row
  int head_dim = 0;   // even
  double theta = 10000.0;
  const int32_t* positions = nullptr;  // [tokens] global positions
};

// In place on x[tokens, heads, head_dim].
void rope_forward(const RopeArgs& a, float* x);
// The inverse rotation, in place on the gradient.
void rope_backward(const RopeArgs& a, float* dx);

}  // namespace ringtrain
