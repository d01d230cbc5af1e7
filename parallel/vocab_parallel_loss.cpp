#include "parallel/vocab_parallel_loss.h"

#include <cmath>

#include "src/core/error.h"

namespace ringtrain {

void vocab_parallel_ce_forward(const TpGroup& g, VocabLossBuffers& buf, const VocabShard& shard, int64_t rows,
                               const float* logits, const int32_t* targets, float* row_loss, float* row_lse) {
  Backend& be = *g.backend;
  const CrossEntropyArgs a{static_cast<int>(rows), shard.size, shard.start};
  ensure_buffer(be, buf.max, rows);
  ensure_buffer(be, buf.sums, 2 * rows);
  float* m = buf.max.f32();
  float* s = buf.sums.f32();  // [sum of exponentials | target logit]: one all-reduce for both
  float* t = s + rows;
  be.cross_entropy_max(a, logits, m);
  if (g.size() > 1) g.comm->all_reduce(m, static_cast<size_t>(rows), DType::kF32, ReduceOp::kMax);
  be.cross_entropy_sumexp(a, logits, m, s);
  be.cross_entropy_target(a, logits, targets, t);  // only the owning shard contributes
  if (g.size() > 1) g.comm->all_reduce(s, static_cast<size_t>(2 * rows), DType::kF32, ReduceOp::kSum);
  be.cross_entropy_finish(static_cast<int>(rows), m, s, t, targets, row_loss, row_lse);
}

void vocab_parallel_ce_backward(const TpGroup& g, const VocabShard& shard, int64_t rows, float* logits,
                                const int32_t* targets, const float* row_lse, float scale) {
  g.backend->cross_entropy_backward({static_cast<int>(rows), shard.size, shard.start}, logits, row_lse, targets,
                                    scale);
}

void vocab_parallel_argmax(const TpGroup& g, VocabLossBuffers& buf, const VocabShard& shard, int64_t rows,
                           const float* logits, int32_t* argmax) {
  // (value, id) per row; ids are exact in fp32 up to 2^24, far above any vocabulary here.
  RT_CHECK(shard.start + shard.size <= (1 << 24), "argmax ids beyond fp32's exact range");
  Backend& be = *g.backend;
  const int n = g.size();
  const int64_t pair_elems = 2 * rows;
  ensure_buffer(be, buf.pairs, pair_elems);
  ensure_buffer(be, buf.all_pairs, pair_elems * n);
  be.argmax_pairs({static_cast<int>(rows), shard.size, shard.start}, logits, buf.pairs.f32());
  const float* all = buf.pairs.f32();
  if (n > 1) {
    g.comm->all_gather(buf.pairs.f32(), buf.all_pairs.f32(), static_cast<size_t>(pair_elems), DType::kF32);
    all = buf.all_pairs.f32();
  }
  buf.host_pairs.resize(static_cast<size_t>(pair_elems * n));
  be.download(buf.host_pairs.data(), all, buf.host_pairs.size() * sizeof(float));
  for (int64_t r = 0; r < rows; ++r) {
    float best_v = -INFINITY;
    int32_t best_id = 0;
    for (int j = 0; j < n; ++j) {  // shards in rank order = ascending ids: first max wins
      const float v = buf.host_pairs[static_cast<size_t>(j * pair_elems + 2 * r)];
      if (v > best_v) {
        best_v = v;
        best_id = static_cast<int32_t>(buf.host_pairs[static_cast<size_t>(j * pair_elems + 2 * r + 1)]);
      }
    }
    argmax[r] = best_id;
  }
}

}  // namespace ringtrain
