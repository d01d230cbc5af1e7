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

// out[tokens, dim]
void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out);
// dtable[vocab_local, dim] += scatter of dout
void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout,
                        float* dtable);

}  // namespace ringtrain
