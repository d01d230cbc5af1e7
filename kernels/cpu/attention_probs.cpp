// Attention probabilities on the CPU (kernels/attention_probs.h). Per (sample, head) and tile
// of kTileQ queries: S = scale Q K^T against the whole key block in one sgemm (kTileQ x s_k
// floats: linear in the sequence), then p = exp(S - lse) element by element under the
// forward's mask, scattered to the rows, pooled blocks and row statistics of the query's and
// key's global positions. Work items are (sample, head) pairs: each owns its slice of all
// three outputs, so threads never write the same element and the sums keep one order.
#include "kernels/attention_probs.h"

#include <cblas.h>

#include <cmath>
#include <vector>

#include "src/core/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ringtrain {
namespace {

constexpr int kTileQ = 64;

bool visible(const AttentionArgs& a, int32_t qp, int32_t kp, const int32_t* qd, const int32_t* kd, int i, int j) {
  if (a.causal && kp > qp) return false;
  if (a.window > 0 && qp - kp >= a.window) return false;
  return qd == nullptr || qd[i] == kd[j];
}

}  // namespace

void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                     const float* lse, float* rows, float* pooled, float* stats) {
  RT_CHECK(a.h % a.h_kv == 0 && p.seq_len > 0 && (p.pool == 0 || p.seq_len % p.pool == 0),
           "attention_probs: h ", a.h, " h_kv ", a.h_kv, " seq_len ", p.seq_len, " pool ", p.pool);
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.d));
  const int group = a.h / a.h_kv, sw = p.stat_width(), np = p.n_pool();
  const int64_t q_row = static_cast<int64_t>(a.h) * a.d, k_row = static_cast<int64_t>(a.h_kv) * a.d;
  const int items = a.b * a.h;
#pragma omp parallel for schedule(dynamic) num_threads(attention_cpu_threads())
  for (int item = 0; item < items; ++item) {
    const int bi = item / a.h, hi = item % a.h;
    const float* qb = q + static_cast<int64_t>(bi) * a.s_q * q_row + static_cast<int64_t>(hi) * a.d;
    const float* kb = k + static_cast<int64_t>(bi) * a.s_k * k_row + static_cast<int64_t>(hi / group) * a.d;
    const float* lb = lse + static_cast<int64_t>(item) * a.s_q;
    const int32_t* qd = a.q_doc ? a.q_doc + static_cast<int64_t>(bi) * a.s_q : nullptr;
    const int32_t* kd = a.k_doc ? a.k_doc + static_cast<int64_t>(bi) * a.s_k : nullptr;
    float* rb = rows ? rows + static_cast<int64_t>(item) * p.n_rows * p.seq_len : nullptr;
    float* pb = pooled ? pooled + static_cast<int64_t>(item) * np * np : nullptr;
    float* sb = stats + static_cast<int64_t>(item) * p.seq_len * sw;
    std::vector<float> s(static_cast<size_t>(kTileQ) * a.s_k);
    for (int i0 = 0; i0 < a.s_q; i0 += kTileQ) {
      const int nq = std::min(kTileQ, a.s_q - i0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, a.s_k, a.d, scale, qb + i0 * q_row,
                  static_cast<int>(q_row), kb, static_cast<int>(k_row), 0.0f, s.data(), a.s_k);
      for (int r = 0; r < nq; ++r) {
        const int i = i0 + r;
        const int32_t qp = a.q_pos ? a.q_pos[i] : i;
        const float l = lb[i];
        if (qp >= p.seq_len || std::isinf(l)) continue;
        const int slot = p.row_slot ? p.row_slot[i] : -1;
        float* row = slot >= 0 ? rb + static_cast<int64_t>(slot) * p.seq_len : nullptr;
        float* pool_row = pb ? pb + static_cast<int64_t>(qp / p.pool) * np : nullptr;
        float* st = sb + static_cast<int64_t>(qp) * sw;
        double entropy = 0.0, distance = 0.0;
        for (int j = 0; j < a.s_k; ++j) {
          const int32_t kp = a.k_pos ? a.k_pos[j] : j;
          if (kp >= p.seq_len || !visible(a, qp, kp, qd, kd, i, j)) continue;
          const float sc = s[static_cast<size_t>(r) * a.s_k + j];
          const float pr = std::exp(sc - l);
          if (row) row[kp] += pr;
          if (pool_row) pool_row[kp / p.pool] += pr;
          entropy += static_cast<double>(pr) * (l - sc);
          distance += static_cast<double>(pr) * (qp - kp);
          for (int m = 0; m < p.n_spans; ++m)
            if (kp >= p.spans[2 * m] && kp < p.spans[2 * m + 1]) st[kProbStats + m] += pr;
        }
        st[0] += static_cast<float>(entropy);
        st[1] += static_cast<float>(distance);
      }
    }
  }
}

}  // namespace ringtrain
