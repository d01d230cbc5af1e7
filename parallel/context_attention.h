// Attention over a sequence split across the cp group: the one entry point the model calls.
//   ring:    K/V blocks travel the cp ring (parallel/ring_attention.cpp)
//   ulysses: all-to-all to head-sharded full sequences, local attention, all-to-all back
//            (parallel/ulysses.cpp)
//   hybrid:  cp = ulysses x ring: all-to-all inside each ulysses group, then a ring across
//            the groups.
// With cp = 1 it is the flash kernel itself.
//
// Packed documents: each micro-batch may carry per-sample document ids of the whole sequence;
// every member derives its frame's ids from them, so the ring knows on every rank which
// blocks can see each other (parallel/attention_plan.h) and skips the rest, and the kernels
// mask by document (and by the sliding window).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "parallel/attention_plan.h"
#include "src/core/communicator.h"
#include "parallel/ring_attention.h"
#include "parallel/ulysses.h"

namespace ringtrain {

struct ContextAttention {
  Communicator* ring = nullptr;     // the ring's group (cp group, or the ring part in hybrid)
  Communicator* ulysses = nullptr;  // the all-to-all group (ulysses/hybrid); null otherwise
  // positions[m] = global positions of the tokens of cp member m (all members, in rank order
  // of the whole cp group): member m of the ring is cp rank m*ulysses_size + u.
  std::vector<std::vector<int32_t>> member_positions;
  bool cross_rank = true;  // false: attend only to this rank's own tokens (eval control)
  bool causal = true;
  int window = 0;  // sliding window in positions; 0: none
  Backend* backend = nullptr;  // computes; ring/ulysses communicate on its memory

  // Set by context_attention_prepare: each ring member's frame positions (the union of its
  // Ulysses group's tokens; the member's own without Ulysses) on the host and the device, and
  // the member positions on the device.
  std::vector<std::vector<int32_t>> frame_positions;
  std::vector<Tensor> frame_positions_dev, member_positions_dev;
  // Set by context_attention_set_documents for the current micro-batch: document ids of each
  // member's and each frame's tokens ([b, s] each; empty without documents) and the ring's
  // plan (frames' positions and ids on the device, which blocks see each other, hops).
  bool has_docs = false;
  std::vector<std::vector<int32_t>> member_docs, frame_docs;
  std::vector<Tensor> member_docs_dev, frame_docs_dev;
  std::vector<std::vector<std::vector<FrameRun>>> frame_runs;  // [frame][sample]
  RingPlan plan;
  // Ulysses with more members than kv heads: the kv heads each member's query heads read,
  // gathered (duplicated) before the all-to-all and summed back after it.
  std::vector<int32_t> kv_map;
  int kv_split_heads[2] = {0, 0};  // (h, h_kv) kv_map was planned for
  Tensor kv_map_dev, kx, vx, dkx, dvx;
  // Buffers reused from call to call (device memory).
  RingBuffers ring_buffers;
  UlyssesBuffers a2a;
  Tensor qf, kf, vf, dof, dqf, dkf, dvf, delta;
};

// After the fields above are set: derives the frame positions, uploads the positions and plans
// the ring for sequences of one document each.
void context_attention_prepare(ContextAttention& ctx, Backend& be);
// Before each micro-batch: docs[b * seq_len] the document id of every token of every whole
// sample (non-decreasing along each sample), or null for one document per sample. Reuses its
// buffers: a steady-state step allocates nothing.
void context_attention_set_documents(ContextAttention& ctx, int b, const int32_t* docs);

// How K/V cross a Ulysses all-to-all of u members for h query and h_kv kv heads (per tp
// rank): when u divides h_kv each member takes h_kv / u of them as they are; otherwise each
// member needs the kv heads its h / u query heads read: one when those heads share a kv head,
// else one per query head. `map` lists, for each of the u * per_member heads sent, the local
// kv head it copies (empty when nothing is duplicated).
struct UlyssesKvSplit {
  int per_member = 0;
  std::vector<int32_t> map;
};
UlyssesKvSplit ulysses_kv_split(int h, int h_kv, int u);

// Shapes for one rank: b samples, s_local tokens each, h_local query heads, h_kv_local
// kv heads, head dim d. q/out/dout/dq: [b, s_local, h, d]; k/v/dk/dv: [b, s_local, h_kv, d].
struct LocalAttentionShape {
  int b = 1, s_local = 0, h = 1, h_kv = 1, d = 0;
};

// What backward needs from forward, in the frame the attention actually ran in (after the
// Ulysses all-to-all: the gathered sequence with a slice of the heads).
struct ContextAttentionSaved {
  Tensor lse;  // [b, h', s'] of the frame
  Tensor out;  // out in the frame (Ulysses: head-sharded); ring/none: unused (use out)
};

void context_attention_forward(ContextAttention& ctx, const LocalAttentionShape& shape,
                               const float* q, const float* k, const float* v, float* out,
                               ContextAttentionSaved* saved);
// Overwrites dq, dk, dv.
void context_attention_backward(ContextAttention& ctx, const LocalAttentionShape& shape,
                                const float* q, const float* k, const float* v, const float* out,
                                const float* dout, const ContextAttentionSaved& saved, float* dq,
                                float* dk, float* dv);

// Attention probabilities of one layer (kernels/attention_probs.h), read back after its
// context_attention_forward from the same q, k and saved lse, in the frame the forward ran in
// (the same ring, the same Ulysses all-to-all, the same masks), so each output element is the
// exact p of the whole attention. Rows, spans: global positions.
struct ProbsRequest {
  int seq_len = 0;             // positions >= seq_len are padding and left out
  std::vector<int32_t> rows;   // the query rows wanted
  int pool = 0;                // 0: no pooled map
  std::vector<int32_t> spans;  // [n][2] key positions [lo, hi)
};
// Device buffers for the frame's query heads, every element indexed by global position and
// holding this rank's share (zero elsewhere): summed over the cp group they are the result.
struct ContextProbs {
  AttentionProbsArgs args;      // row_slot and spans point into the tensors below
  int heads = 0;                // query heads of the frame
  int head_offset = 0;          // the first of them among this rank's heads
  Tensor rows, pooled, stats;   // [b, heads, n_rows, seq_len], [b, heads, n_pool, n_pool],
                                // [b, heads, seq_len, args.stat_width()]
  Tensor row_slot, spans;
};
void context_attention_probs(ContextAttention& ctx, const LocalAttentionShape& shape, const float* q,
                             const float* k, const ContextAttentionSaved& saved, const ProbsRequest& req,
                             ContextProbs* out);

}  // namespace ringtrain
