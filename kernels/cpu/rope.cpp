// Rotary embedding, Hugging Face Llama convention (rotate_half: dimension i pairs with
// i + d/2). The frequencies are computed in fp32 exactly as transformers does it (see
// rope_frequencies below), the angle pos.float() * inv_freq in fp32, and cos/sin taken in
// fp32, so exported weights produce the same activations there even at large positions (an
// fp64 angle would be "more exact" and disagree with the reference).
#include "kernels/cpu/ops_cpu.h"
#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {

// Each line is one torch operation of transformers' modeling_rope_utils on fp32 tensors, so each
// rounds once, in the same order. Python scalars meet a float tensor as floats; `c / t` on a
// tensor is torch's __rtruediv__, t.reciprocal() * c (two roundings, not one division).
RopeFrequencies rope_frequencies(int head_dim, double theta, const RopeScaling& sc) {
  RT_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope: head_dim must be even, got ", head_dim);
  const int half = head_dim / 2;
  RopeFrequencies out;
  out.inv_freq.resize(static_cast<size_t>(half));
  std::vector<float> pos_freq(static_cast<size_t>(half));  // theta ** (2i / d)
  const float base = static_cast<float>(theta);
  for (int i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    pos_freq[static_cast<size_t>(i)] = std::pow(base, e);
  }
  const float factor = static_cast<float>(sc.factor);
  if (sc.type != RopeType::kNone) RT_INPUT_CHECK(sc.factor >= 1.0, "rope_scaling: factor must be >= 1, got ", sc.factor);
  if (sc.type == RopeType::kLlama3 || sc.type == RopeType::kYarn)
    RT_INPUT_CHECK(sc.original_max_positions > 0, "rope_scaling: original_max_position_embeddings must be set (> 0)");
  switch (sc.type) {
    case RopeType::kNone:
    case RopeType::kLinear:
      for (int i = 0; i < half; ++i) {
        float f = 1.0f / pos_freq[static_cast<size_t>(i)];
        if (sc.type == RopeType::kLinear) f = f / factor;
        out.inv_freq[static_cast<size_t>(i)] = f;
      }
      break;
    case RopeType::kLlama3: {
      RT_INPUT_CHECK(sc.low_freq_factor > 0.0 && sc.high_freq_factor > sc.low_freq_factor,
                     "rope_scaling: llama3 needs 0 < low_freq_factor < high_freq_factor, got ", sc.low_freq_factor,
                     " and ", sc.high_freq_factor);
      const double old_len = sc.original_max_positions;
      const float low_wavelen = static_cast<float>(old_len / sc.low_freq_factor);
      const float high_wavelen = static_cast<float>(old_len / sc.high_freq_factor);
      const float two_pi = static_cast<float>(2.0 * 3.14159265358979323846);
      const float low = static_cast<float>(sc.low_freq_factor);
      const float span = static_cast<float>(sc.high_freq_factor - sc.low_freq_factor);
      for (int i = 0; i < half; ++i) {
        const float inv = 1.0f / pos_freq[static_cast<size_t>(i)];
        const float wavelen = (1.0f / inv) * two_pi;
        const float scaled = wavelen > low_wavelen ? inv / factor : inv;
        float f = scaled;
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
          const float smooth = ((1.0f / wavelen) * static_cast<float>(old_len) - low) / span;
          const float a = ((1.0f - smooth) * scaled) / factor;
          const float b = smooth * scaled;
          f = a + b;
        }
        out.inv_freq[static_cast<size_t>(i)] = f;
      }
      break;
    }
    case RopeType::kYarn: {
      const double beta_fast = sc.beta_fast != 0.0 ? sc.beta_fast : 32.0;
      const double beta_slow = sc.beta_slow != 0.0 ? sc.beta_slow : 1.0;
      const double pi = 3.14159265358979323846;
      // The dimension at which a frequency turns `rotations` times over the original context.
      auto correction_dim = [&](double rotations) {
        return (head_dim * std::log(sc.original_max_positions / (rotations * 2 * pi))) / (2 * std::log(theta));
      };
      double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
      if (sc.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(head_dim - 1));
      if (low == high) high += 0.001;
      const float ramp_lo = static_cast<float>(low), ramp_span = static_cast<float>(high - low);
      for (int i = 0; i < half; ++i) {
        const float pf = pos_freq[static_cast<size_t>(i)];
        const float extrapolation = 1.0f / pf;
        const float interpolation = 1.0f / (factor * pf);
        const float ramp = std::clamp((static_cast<float>(i) - ramp_lo) / ramp_span, 0.0f, 1.0f);
        const float extra_weight = 1.0f - ramp;
        const float a = interpolation * (1.0f - extra_weight);
        const float b = extrapolation * extra_weight;
        out.inv_freq[static_cast<size_t>(i)] = a + b;
      }
      const double att = sc.attention_factor != 0.0 ? sc.attention_factor
                         : sc.factor <= 1.0        ? 1.0
                                                   : 0.1 * std::log(sc.factor) + 1.0;
      out.attention_scaling = static_cast<float>(att);
      break;
    }
  }
  return out;
}

namespace {

// cos/sin of every (token, frequency) of the last call on this thread, keyed by the positions
// themselves, theta, head_dim and the scaling: the model rotates q and k with the same positions in every
// layer, forward and backward, so the tables are computed once per batch layout instead of
// 4 x layers times per step. The values are the same fp32 expressions as without the cache.
struct RopeTables {
  double theta = 0.0;
  int head_dim = 0;
  RopeScaling scaling;
  std::vector<int32_t> positions;
  std::vector<float> cs, sn;  // [tokens, head_dim / 2]
};

const RopeTables& rope_tables(const RopeArgs& a) {
  thread_local RopeTables t;
  const size_t n = static_cast<size_t>(a.tokens);
  if (t.theta == a.theta && t.head_dim == a.head_dim && t.scaling == a.scaling && t.positions.size() == n &&
      (n == 0 || std::memcmp(t.positions.data(), a.positions, n * sizeof(int32_t)) == 0))
    return t;
  const int half = a.head_dim / 2;
  const RopeFrequencies fr = rope_frequencies(a.head_dim, a.theta, a.scaling);
  const std::vector<float>& inv_freq = fr.inv_freq;
  const float att = fr.attention_scaling;
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
      // transformers: emb.cos() * attention_scaling (exact when the scaling is 1)
      cs[i] = std::cos(ang) * att;
      sn[i] = std::sin(ang) * att;
    }
  }
  t.theta = a.theta;
  t.head_dim = a.head_dim;
  t.scaling = a.scaling;
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
