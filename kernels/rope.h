// Rotary position embedding with the Hugging Face Llama convention ("rotate_half": dimension i
// pairs with i + d/2), angle = pos * inv_freq[i], from GLOBAL token positions so that a
// sequence split or reordered across ranks (zigzag) embeds exactly as the whole sequence.
//
// The frequencies and the RoPE scaling variants follow transformers' modeling_rope_utils
// (default, linear, llama3, yarn). rope_frequencies() computes them on the host in fp32 with
// transformers' operations in transformers' order: one ulp of difference in inv_freq moves the
// fp32 angle at position 64k by ~4e-3 rad, so "close" frequencies would not be close enough.
#pragma once

#include <cstdint>
#include <vector>

namespace ringtrain {

enum class RopeType { kNone, kLinear, kLlama3, kYarn };

// transformers' rope_parameters (config.json's rope_scaling), by type:
//   linear: inv_freq / factor (position interpolation)
//   llama3: low frequencies (wavelength > original / low_freq_factor) / factor, high ones
//           (wavelength < original / high_freq_factor) kept, a smooth blend between
//   yarn:   per-dimension blend of interpolated and extrapolated frequencies over the ramp
//           between beta_fast and beta_slow rotations in the original context, and cos/sin
//           scaled by attention_factor (0: 0.1 ln(factor) + 1, the paper's mscale)
struct RopeScaling {
  RopeType type = RopeType::kNone;
  double factor = 1.0;
  int original_max_positions = 0;  // llama3, yarn: the pretraining context
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double attention_factor = 0.0;                         // yarn; 0: derived from factor
  bool truncate = true;                                  // yarn: integer correction range
  bool operator==(const RopeScaling&) const = default;
};

struct RopeFrequencies {
  std::vector<float> inv_freq;      // [head_dim / 2]
  float attention_scaling = 1.0f;   // multiplies cos and sin
};
// Input error for parameters transformers would reject (factor < 1, high <= low, ...).
RopeFrequencies rope_frequencies(int head_dim, double theta, const RopeScaling& scaling);

struct RopeArgs {
  int tokens = 0;     // rows (batch * local sequence)
  int heads = 0;      // heads in the row
  int head_dim = 0;   // even
  double theta = 10000.0;
  const int32_t* positions = nullptr;  // [tokens] global positions
  RopeScaling scaling = {};
};

}  // namespace ringtrain
