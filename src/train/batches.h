// Which samples a rank trains on (DESIGN.md's data section): the global batch of step s holds
// dp x micro_batch x grad_accum samples; micro-step a on replica d takes samples
// [(a*dp + d)*micro_batch, ...); each cp rank keeps its zigzag chunks (micro-batches of packed
// documents: its share of the document-aware split, parallel/document_split.h); tp ranks read
// the same.
#pragma once

#include <cstdint>

#include "data/dataset.h"
#include "parallel/zigzag.h"
#include "src/model/llama.h"

namespace ringtrain {

struct BatchPlan {
  int dp = 1, dp_rank = 0, cp = 1, cp_rank = 0, micro_batch = 1, seq_len = 0;
  int window = 0;  // model.sliding_window: weighs the document split's work
};

// Fills `out` with this rank's share of micro-step `micro` of step `step`.
void load_local_batch(const Dataset& data, const BatchPlan& plan, uint64_t step, int micro,
                      LocalBatch* out);

}  // namespace ringtrain
