// Cross-entropy over logits sharded by vocabulary across the tp group, without ever gathering
// them: all-reduces of one or two floats per row (max, then sum of exponentials with the
// target logit).
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/tp_linear.h"

namespace ringtrain {

struct VocabShard {
  int start = 0;  // first vocabulary id held
  int size = 0;   // ids held
};

// Per-row statistics (device memory), reused from call to call.
struct VocabLossBuffers {
  Tensor max, sums, pairs, all_pairs;
  std::vector<float> host_pairs;
};

// logits[rows, shard.size], targets[rows] (device); on return row_loss[rows] (0 where
// target < 0) and row_lse[rows] (device), identical on every tp rank.
void vocab_parallel_ce_forward(const TpGroup& g, VocabLossBuffers& buf, const VocabShard& shard, int64_t rows,
                               const float* logits, const int32_t* targets, float* row_loss, float* row_lse);
// In place: logits <- dloss/dlogits with dloss/drow = scale for every non-ignored row.
void vocab_parallel_ce_backward(const TpGroup& g, const VocabShard& shard, int64_t rows, float* logits,
                                const int32_t* targets, const float* row_lse, float scale);
// Greedy prediction per row over the whole vocabulary (ties: the lowest id), into host memory.
void vocab_parallel_argmax(const TpGroup& g, VocabLossBuffers& buf, const VocabShard& shard, int64_t rows,
                           const float* logits, int32_t* argmax_host);

}  // namespace ringtrain
