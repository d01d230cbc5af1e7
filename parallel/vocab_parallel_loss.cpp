#include "parallel/vocab_parallel_loss.h"

#include <cmath>

#include "kernels/cross_entropy.h"
#include "src/core/error.h"

namespace ringtrain {

void vocab_parallel_ce_forward(const TpGroup& g, const VocabShard& shard, int64_t rows,
                               const float* logits, const int32_t* targets, float* row_loss,
                               float* row_lse) {
  CrossEntropyArgs a{static_cast<int>(rows), shard.size, shard.start};
  std::vector<float> m(static_cast<size_t>(rows)), s(static_cast<size_t>(rows)),
      t(static_cast<size_t>(rows));
  cross_entropy_max(a, logits, m.data());
  if (g.size() > 1) g.comm->all_reduce(m.data(), m.size(), DType::kF32, ReduceOp::kMax);
  cross_entropy_sumexp(a, logits, m.data(), s.data());
  cross_entropy_target(a, logits, targets, t.data());
  if (g.size() > 1) {
    // sums of exponentials and the (single-owner) target logits, in one all-reduce
    std::vector<float> st(2 * static_cast<size_t>(rows));
    std::copy(s.begin(), s.end(), st.begin());
    std::copy(t.begin(), t.end(), st.begin() + rows);
    g.comm->all_reduce(st.data(), st.size(), DType::kF32, ReduceOp::kSum);
    std::copy(st.begin(), st.begin() + rows, s.begin());
    std::copy(st.begin() + rows, st.end(), t.begin());
  }
  for (int64_t r = 0; r < rows; ++r) {
    const size_t i = static_cast<size_t>(r);
    row_lse[r] = m[i] + std::log(s[i]);
    row_loss[r] = targets[r] < 0 ? 0.0f : row_lse[r] - t[i];
  }
}

void vocab_parallel_ce_backward(const TpGroup&, const VocabShard& shard, int64_t rows, float* logits,
                                const int32_t* targets, const float* row_lse, float scale) {
  CrossEntropyArgs a{static_cast<int>(rows), shard.size, shard.start};
  std::vector<float> sc(static_cast<size_t>(rows), scale);
  cross_entropy_backward(a, logits, row_lse, targets, sc.data());
}

void vocab_parallel_argmax(const TpGroup& g, const VocabShard& shard, int64_t rows,
                           const float* logits, int32_t* argmax) {
  // (value, id) per row; ids are exact in fp32 up to 2^24, far above any vocabulary here.
  const int n = g.size();
  std::vector<float> mine(2 * static_cast<size_t>(rows)), all(mine.size() * static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits + r * shard.size;
    int best = 0;
    for (int j = 1; j < shard.size; ++j)
      if (row[j] > row[best]) best = j;
    mine[2 * r] = row[best];
    mine[2 * r + 1] = static_cast<float>(shard.start + best);
  }
  RT_CHECK(shard.start + shard.size <= (1 << 24), "argmax ids beyond fp32's exact range");
  if (n > 1)
    g.comm->all_gather(mine.data(), all.data(), mine.size(), DType::kF32);
  else
    all = mine;
  for (int64_t r = 0; r < rows; ++r) {
    float best_v = -INFINITY;
    int32_t best_id = 0;
    for (int j = 0; j < n; ++j) {  // shards in rank order = ascending ids: first max wins
      const float v = all[static_cast<size_t>(j) * mine.size() + 2 * r];
      if (v > best_v) {
        best_v = v;
        best_id = static_cast<int32_t>(all[static_cast<size_t>(j) * mine.size() + 2 * r + 1]);
      }
    }
    argmax[r] = best_id;
  }
}

}  // namespace ringtrain
