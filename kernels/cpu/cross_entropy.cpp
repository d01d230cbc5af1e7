// Softmax cross-entropy in three row reductions (max, sum of exp, target logit) so that a
// vocab-parallel caller all-reduces between them and never gathers the logits. Sums are
// accumulated in double and rounded once.
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cross_entropy.h"

#include <cmath>
#include <limits>

namespace ringtrain {

void cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max) {
  const int64_t v = a.vocab_local;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* z = logits + r * v;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < v; ++j) m = z[j] > m ? z[j] : m;
    row_max[r] = m;
  }
}

void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                          float* row_sumexp) {
  const int64_t v = a.vocab_local;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* z = logits + r * v;
    const float m = row_max[r];
    double s = 0.0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(z[j] - m);
    row_sumexp[r] = static_cast<float>(s);
  }
}

void cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                          float* target_logit) {
  const int64_t v = a.vocab_local;
  for (int64_t r = 0; r < a.rows; ++r) {
    const int64_t col = static_cast<int64_t>(targets[r]) - a.vocab_start;
    target_logit[r] = (targets[r] >= 0 && col >= 0 && col < v) ? logits[r * v + col] : 0.0f;
  }
}

void cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                            const int32_t* targets, const float* row_scale) {
  const int64_t v = a.vocab_local;
  for (int64_t r = 0; r < a.rows; ++r) {
    float* z = logits + r * v;
    if (targets[r] < 0) {
      for (int64_t j = 0; j < v; ++j) z[j] = 0.0f;
      continue;
    }
    const float lse = row_lse[r];
    const float scale = row_scale != nullptr ? row_scale[r] : 1.0f;
    for (int64_t j = 0; j < v; ++j) z[j] = std::exp(z[j] - lse) * scale;
    const int64_t col = static_cast<int64_t>(targets[r]) - a.vocab_start;
    if (col >= 0 && col < v) z[col] -= scale;
  }
}

void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                           float* row_loss, float* row_lse) {
  const int64_t v = a.vocab_local;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* z = logits + r * v;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < v; ++j) m = z[j] > m ? z[j] : m;
    double s = 0.0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(z[j] - m);
    const float lse = m + static_cast<float>(std::log(s));
    if (row_lse != nullptr) row_lse[r] = lse;
    const int64_t col = static_cast<int64_t>(targets[r]) - a.vocab_start;
    float loss = 0.0f;
    if (targets[r] >= 0 && col >= 0 && col < v) loss = lse - z[col];
    if (row_loss != nullptr) row_loss[r] = loss;
  }
}

}  // namespace ringtrain
