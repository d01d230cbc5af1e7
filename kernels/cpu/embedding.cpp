// Embedding lookup over a vocab shard: ids outside [vocab_start, vocab_start + vocab_local)
// give zero rows here (another shard owns them; the tp all-reduce fills them in).
#include "kernels/cpu/ops_cpu.h"
#include "kernels/embedding.h"

#include <cstring>

namespace ringtrain {

void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out) {
  const int64_t dim = a.dim;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int64_t row = static_cast<int64_t>(ids[t]) - a.vocab_start;
    float* o = out + t * dim;
    if (row >= 0 && row < a.vocab_local)
      std::memcpy(o, table + row * dim, sizeof(float) * static_cast<size_t>(dim));
    else
      std::memset(o, 0, sizeof(float) * static_cast<size_t>(dim));
  }
}

void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout,
                        float* dtable) {
  const int64_t dim = a.dim;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int64_t row = static_cast<int64_t>(ids[t]) - a.vocab_start;
    if (row < 0 || row >= a.vocab_local) continue;
    float* dst = dtable + row * dim;
    const float* src = dout + t * dim;
    for (int64_t j = 0; j < dim; ++j) dst[j] += src[j];
  }
}

}  // namespace ringtrain
