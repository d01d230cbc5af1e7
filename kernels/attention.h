// Causal/non-causal multi-head attention with GQA/MQA, flash style: keys processed in blocks
// with an online softmax, the row log-sum-exp returned, never an [s_q, s_k] matrix in memory;
// the backward recomputes the probabilities from the saved lse.
//
// Positions are explicit and global: q_pos[s_q], k_pos[s_k]. The causal mask is
// k_pos <= q_pos. So the same kernel computes a whole sequence, one zigzag shard against
// itself, or local queries against one visiting ring block: tiles whose every key is in the
// future of every query are skipped, tiles entirely in the past are unmasked, only the tiles
// that straddle the diagonal evaluate the mask.
//
// Packed documents and sliding windows. With q_doc/k_doc set, a query sees a key only when
// both carry the same document id (per sample: q_doc[b, s_q], k_doc[b, s_k]; ids are
// non-decreasing along the global sequence of a sample, so a tile's id range is tight). With
// window = W > 0 a query at position p sees keys at positions p-W+1..p only. The whole mask:
//   visible(i, j) = (!causal || k_pos[j] <= q_pos[i])
//                && (no docs || q_doc[b, i] == k_doc[b, j])
//                && (window == 0 || q_pos[i] - k_pos[j] < window)
// Positions stay the global sequence positions (a document's tokens are consecutive, so the
// window measured there is the in-document distance); RoPE's in-document positions are the
// model's business, not the kernel's. A tile with no visible pair is skipped; only tiles that
// straddle a diagonal, a document boundary or a window edge evaluate the mask.
// The window is one-sided in every mode: without causal, a query still sees only keys less
// than W positions behind it and every key ahead of it; a two-sided (local) window is not meant.
//
// Layouts: q, out, dq: [b, s_q, h, d];  k, v, dk, dv: [b, s_k, h_kv, d] (K/V never repeated:
// query head j reads kv head j / (h / h_kv));  lse, delta: [b, h, s_q] (fp32).
// A query row that sees no key has lse = -inf and out = 0.
#pragma once

#include <cstdint>

namespace ringtrain {

struct AttentionArgs {
  int b = 1;
  int s_q = 0;
  int s_k = 0;
  int h = 1;
  int h_kv = 1;
  int d = 0;
  bool causal = true;
  float scale = 0.0f;  // 0: 1/sqrt(d)
  const int32_t* q_pos = nullptr;  // null: 0..s_q-1
  const int32_t* k_pos = nullptr;  // null: 0..s_k-1
  const int32_t* q_doc = nullptr;  // [b, s_q] document ids; null (with k_doc): one document
  const int32_t* k_doc = nullptr;  // [b, s_k]
  int window = 0;                  // sliding window in positions; 0: none
};

}  // namespace ringtrain
