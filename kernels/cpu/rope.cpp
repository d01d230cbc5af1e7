// Rotary embedding, Hugging Face Llama convention (rotate_half: dimension i pairs with
// i + d/2). The angles are computed in fp32 exactly as transformers does it
//   inv_freq = 1 / theta ** (arange(0, d, 2).float() / d);  angle = pos.float() * inv_freq
// and cos/sin taken in fp32, so exported weights produce the same activations there even at
// large positions (an fp64 angle would be "more exact" and disagree with the reference).
#include "kernels/rope.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

// cos/sin of every (token, frequency) of the last call on this thread, keyed by the positions
// themselves, theta and head_dim: the model rotates q and k with the same positions in every
// layer, forward and backward, so the tables are computed once per batch layout instead of
// 4 x layers times per step. The values are the same fp32 expressions as without the cache.
struct RopeTables {
  double theta = 0.0;
  int head_dim = 0;
  std::vector<int32_t> positions;
  std::vector<float> cs, sn;  // [tokens, head_dim / 2]
};

const RopeTables& rope_tables(const RopeArgs& a) {
  thread_local RopeTables t;
  const size_t n = static_cast<size_t>(a.tokens);
  if (t.theta == a.theta && t.head_dim == a.head_dim && t.positions.size() == n &&
      (n == 0 || std::memcmp(t.positions.data(), a.positions, n * sizeof(int32_t)) == 0))
    return t;
  const int half = a.head_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  const float theta = static_cast<float>(a.theta);
  for (int i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(a.head_dim);
    inv_freq[static_cast<size_t>(i)] = 1.0f / std::pow(theta, e);
  }
  ws::ensure_size(t.positions, n);
  ws::ensure_size(t.cs, n * static_cast<size_t>(half));
  ws::ensure_size(t.sn, n * static_cast<size_t>(half));
  if (n > 0) std::memcpy(t.positions.data(), a.positions, n * sizeof(int32_t));
  for (size_t tok = 0; tok < n; ++tok) {
    const float pos = static_cast<float>(a.positions[tok]);
    float* cs = t.cs.data() + tok * static_cast<size_t>(half);
    float* sn = t.sn.data() + tok * static_cast<size_t>(half);
    for (int i = 0; i < half; ++i) {
      const float ang = pos * inv_freq[static_cast<size_t>(i)];
      cs[i] = std::cos(ang);
      sn[i] = std::sin(ang);
    }
  }
  t.theta = a.theta;
  t.head_dim = a.head_dim;
  return t;
}

template <bool kInverse>
void rope_apply(const RopeArgs& a, float* x) {
  RT_CHECK(a.head_dim % 2 == 0, "rope: head_dim must be even, got ", a.head_dim);
  RT_CHECK(a.positions != nullptr || a.tokens == 0, "rope: positions are required");
  const int half = a.head_dim / 2;
  const RopeTables& tab = rope_tables(a);
  for (int64_t t = 0; t < a.tokens; ++t) {
    const float* cs = tab.cs.data() + t * half;
    const float* sn = tab.sn.data() + t * half;
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
