// Softmax cross-entropy over (possibly vocab-sharded) logits, in three reductions so a
// tensor-parallel caller can all-reduce between them without ever gathering the logits:
//   m = max_v z           (all-reduce max over the vocab shards)
//   s = sum_v exp(z - m)  (all-reduce sum)
//   t = z[target]         (all-reduce sum; only the owning shard contributes)
//   loss = log(s) + m - t
// Targets < 0 are ignored (no loss, no gradient).
#pragma once

#include <cstdint>

namespace ringtrain {

struct CrossEntropyArgs {
  int rows = 0;
  int vocab_local = 0;  // columns of this shard
  int vocab_start = 0;  // first vocabulary id of this shard
};

void cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max);
void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                          float* row_sumexp);
void cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                          float* target_logit);
// In place: logits <- dL/dlogits = (softmax - onehot(target)) * row_scale[row], where
// lse = m + log(s) is the global row log-sum-exp; rows with target < 0 get zero gradient.
void cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                            const int32_t* targets, const float* row_scale);

// Single-shard convenience: per-row losses (0 for ignored rows) and row_lse.
void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                           float* row_loss, float* row_lse);

}  // namespace ringtrain
