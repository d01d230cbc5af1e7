// Token embedding lookup. Vocab-parallel: a rank holds rows [vocab_start, vocab_start +
// vocab_local) of the table; tokens outside give zero rows (summed over tp afterwards).
#pragma once

#include <cstdint>

namespace ringtrain {

struct EmbeddingArgs {
  int tokens = 0;
  int dim = 0;
  int vocab_start = 0;
  int vocab_local = 0;
};

}  // namespace ringtrain
