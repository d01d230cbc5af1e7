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

}  // namespace ringtrain
