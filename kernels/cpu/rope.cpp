// Rotary embedding, Hugging Face Llama convention (rotate_half: dimension i pairs with
// i + d/2). The angles are computed in fp32 exactly as transformers does it
//   inv_freq = 1 / theta ** (arange(0, d, 2).float() / d);  angle = pos.float() * inv_freq
// and cos/sin taken in fp32, so exported weights produce the same activations there even at
// large positions (an fp64 angle would be "more exact" and disagree with the reference).
#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "src/core/error.h"

namespace ringtrain {
namespace {

template <bool kInverse>
void rope_apply(const RopeArgs& a, float* x) {
  RT_CHECK(a.head_dim % 2 == 0, "rope: head_dim must be even, got ", a.head_dim);
  RT_CHECK(a.positions != nullptr || a.tokens == 0, "rope: positions are required");
  const int half = a.head_dim / 2;
  std::vector<float> inv_freq(half), cs(half), sn(half);
  const float theta = static_cast<float>(a.theta);
  for (int i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(a.head_dim);
    inv_freq[i] = 1.0f / std::pow(theta, e);
  }
  for (int64_t t = 0; t < a.tokens; ++t) {
    const float pos = static_cast<float>(a.positions[t]);
    for (int i = 0; i < half; ++i) {
      const float ang = pos * inv_freq[i];
      cs[i] = std::cos(ang);
      sn[i] = std::sin(ang);
    }
    for (int hh = 0; hh < a.heads; ++hh) {
      float* v = x + (t * a.heads + hh) * static_cast<int64_t>(a.head_dim);
      for (int i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        if (kInverse) {
          // transpose of the rotation: the gradient through y = R x is R^T dy
          v[i] = x1 * cs[i] + x2 * sn[i];
          v[i + half] = x2 * cs[i] - x1 * sn[i];
        } else {
          // y = x cos + rotate_half(x) sin, rotate_half(x) = (-x2, x1)
          v[i] = x1 * cs[i] + (-x2) * sn[i];
          v[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  }
}

}  // namespace

void rope_forward(const RopeArgs& a, float* x) { rope_apply<false>(a, x); }
void rope_backward(const RopeArgs& a, float* dx) { rope_apply<true>(a, dx); }

}  // namespace ringtrain
