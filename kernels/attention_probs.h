// Attention probabilities read back after a forward: p(i, j) = exp(s(i, j) - lse(i)) with the
// FINAL row lse (kernels/attention.h), for one block of keys at a time, so a ring step or a
// Ulysses frame contributes exactly its columns and nothing ever holds [s, s].
//
// Everything is indexed by GLOBAL position (q_pos, k_pos of AttentionArgs), so the outputs of
// every block, every ring step and every rank are disjoint parts of one global result and a
// plain sum assembles it:
//   rows   [b, h, n_rows, seq_len]   p of the chosen query rows over every key position
//   pooled [b, h, n_pool, n_pool]    sum of p over pool x pool (query, key) position blocks,
//                                    n_pool = seq_len / pool; a full row of blocks sums to pool
//   stats  [b, h, seq_len, kProbStats + n_spans] per query position: entropy -sum p log p, the
//          mean attended distance sum p (q_pos - k_pos), then the mass on each key span
// All three are accumulated (+=); positions >= seq_len (padding) are left out. The mask is the
// forward's (causal, documents, window); a row with lse = -inf has p = 0.
// Entropy per block: -sum p log p = sum p (lse - s), additive over key blocks.
#pragma once

#include <cstdint>

#include "kernels/attention.h"

namespace ringtrain {

inline constexpr int kProbStats = 2;  // entropy, mean distance; then one column per key span

struct AttentionProbsArgs {
  int seq_len = 0;                    // global positions >= seq_len are padding
  const int32_t* row_slot = nullptr;  // [s_q]: slot of query i in rows, -1: not wanted; null: no rows
  int n_rows = 0;
  int pool = 0;                       // divides seq_len; 0: no pooled map
  const int32_t* spans = nullptr;     // [n_spans][2]: key positions [lo, hi)
  int n_spans = 0;
  int stat_width() const { return kProbStats + n_spans; }
  int n_pool() const { return pool > 0 ? seq_len / pool : 0; }
};

}  // namespace ringtrain
