// Ring attention (Liu et al., "Ring Attention with Blockwise Transformers", 2023), with the
// zigzag layout's global positions deciding the causal mask.
//
// Forward. Rank r holds queries Q_r and its own block (K_r, V_r). In step t it computes Q_r
// against the block of member (r - t) mod n, which arrived from its left neighbour, and folds
// the block's normalized partial output into the running one by the lse merge
// (kernels/attention.h). The block for step t+1 is posted (send to the right, receive from
// the left) BEFORE step t's compute and waited on after it: two buffers alternate, so the
// transfer hides behind the kernel. K/V travel with their GQA kv heads only (never repeated
// to the query heads): n_kv_heads/n_heads of the traffic.
//
// Backward. dQ_r stays home. The gradient of a block's K/V is a sum over every rank's
// queries, so an fp32 accumulator for (dK_j, dV_j) travels the ring behind block j: in step t
// rank r computes its contribution for block (r - t) into a fresh buffer while the partial
// sum of the ranks before it is in flight, adds the two, and passes the sum on in the next
// step. After the last step one more hop brings each block's complete dK/dV home. Each hop is
// posted before the step's compute and waited on after it, as in the forward.
//
// On a GPU the transfers run on the communicator's stream: exchange() makes that stream wait
// for the compute issued so far (the block to send is complete), and wait() makes the compute
// stream wait for the transfer, so the kernel issued in between overlaps it.
#include "parallel/ring_attention.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "src/core/error.h"

namespace ringtrain {
namespace {

int wrap(int i, int n) { return ((i % n) + n) % n; }

AttentionArgs block_args(const RingShape& s, const RingPlan& p, int q_member, int k_member) {
  AttentionArgs a;
  a.b = s.b;
  a.s_q = s.s;
  a.s_k = s.s;
  a.h = s.h;
  a.h_kv = s.h_kv;
  a.d = s.d;
  a.causal = s.causal;
  a.q_pos = p.pos[static_cast<size_t>(q_member)];
  a.k_pos = p.pos[static_cast<size_t>(k_member)];
  if (!p.doc.empty()) {
    a.q_doc = p.doc[static_cast<size_t>(q_member)];
    a.k_doc = p.doc[static_cast<size_t>(k_member)];
  }
  a.window = p.window;
  return a;
}

bool sees(const RingPlan& p, int n, int q_member, int k_member) {
  return p.visible[static_cast<size_t>(q_member) * n + k_member] != 0;
}

void check(const Communicator& ring, const RingPlan& p) {
  const int n = ring.size();
  RT_CHECK(static_cast<int>(p.pos.size()) == n && static_cast<int>(p.visible.size()) == n * n &&
               (p.doc.empty() || static_cast<int>(p.doc.size()) == n),
           "ring: a plan for ", p.pos.size(), " members, ring of ", n);
  RT_CHECK(p.steps >= 1 && p.steps <= n, "ring: steps ", p.steps, " of ", n);
}

}  // namespace

void ring_attention_forward(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& s,
                            const RingPlan& plan, const float* q, const float* k, const float* v, float* out,
                            float* lse) {
  check(ring, plan);
  const int steps = plan.steps;
  const int n = ring.size(), r = ring.rank();
  const int64_t kv_elems = static_cast<int64_t>(s.b) * s.s * s.h_kv * s.d;
  const int64_t q_elems = static_cast<int64_t>(s.b) * s.s * s.h * s.d;
  const int64_t lse_elems = static_cast<int64_t>(s.b) * s.h * s.s;
  const size_t kv_bytes = static_cast<size_t>(kv_elems) * sizeof(float);
  // Two K|V buffers: the visiting block and the next one in flight (one block alone: no copy).
  const bool travels = steps > 1;
  if (travels) {
    ensure_buffer(be, rb.kv[0], 2 * kv_elems);
    ensure_buffer(be, rb.kv[1], 2 * kv_elems);
    be.copy(rb.kv[0].f32(), k, kv_bytes);
    be.copy(rb.kv[0].f32() + kv_elems, v, kv_bytes);
    ensure_buffer(be, rb.block_out, q_elems);
    ensure_buffer(be, rb.block_lse, lse_elems);
  }
  be.fill(out, 0.0f, q_elems);
  be.fill(lse, -std::numeric_limits<float>::infinity(), lse_elems);
  bool first = true;  // no block merged yet: the first visible block writes out/lse directly
  for (int t = 0; t < steps; ++t) {
    const int src = wrap(r - t, n);
    float* cur = travels ? rb.kv[t % 2].f32() : nullptr;
    Pending next;
    if (t + 1 < steps) {  // post the next block's transfer before this step's compute
      rb.ops.clear();
      rb.ops.push_back({P2POp::kSend, cur, static_cast<size_t>(2 * kv_elems), wrap(r + 1, n)});
      rb.ops.push_back({P2POp::kRecv, rb.kv[(t + 1) % 2].f32(), static_cast<size_t>(2 * kv_elems), wrap(r - 1, n)});
      next = ring.exchange(rb.ops, DType::kF32);
    }
    if (sees(plan, n, r, src)) {
      const AttentionArgs a = block_args(s, plan, r, src);
      if (!travels) {
        be.attention_forward(a, q, k, v, out, lse);
      } else if (first) {
        be.attention_forward(a, q, cur, cur + kv_elems, out, lse);
      } else {
        be.attention_forward(a, q, cur, cur + kv_elems, rb.block_out.f32(), rb.block_lse.f32());
        be.attention_merge(s.b, s.s, s.h, s.d, out, lse, rb.block_out.f32(), rb.block_lse.f32());
      }
      first = false;
    }
    if (next) next->wait();
  }
}

void ring_attention_probs(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& s,
                          const RingPlan& plan, const AttentionProbsArgs& pa, const float* q, const float* k,
                          const float* lse, float* rows, float* pooled, float* stats) {
  check(ring, plan);
  const int steps = plan.steps;
  const int n = ring.size(), r = ring.rank();
  const int64_t k_elems = static_cast<int64_t>(s.b) * s.s * s.h_kv * s.d;
  const bool travels = steps > 1;
  if (travels) {
    ensure_buffer(be, rb.kv[0], k_elems);
    ensure_buffer(be, rb.kv[1], k_elems);
    be.copy(rb.kv[0].f32(), k, static_cast<size_t>(k_elems) * sizeof(float));
  }
  for (int t = 0; t < steps; ++t) {
    const int src = wrap(r - t, n);
    const float* cur = travels ? rb.kv[t % 2].f32() : k;
    Pending next;
    if (t + 1 < steps) {
      rb.ops.clear();
      rb.ops.push_back({P2POp::kSend, rb.kv[t % 2].f32(), static_cast<size_t>(k_elems), wrap(r + 1, n)});
      rb.ops.push_back({P2POp::kRecv, rb.kv[(t + 1) % 2].f32(), static_cast<size_t>(k_elems), wrap(r - 1, n)});
      next = ring.exchange(rb.ops, DType::kF32);
    }
    if (sees(plan, n, r, src)) be.attention_probs(block_args(s, plan, r, src), pa, q, cur, lse, rows, pooled, stats);
    if (next) next->wait();
  }
}

void ring_attention_backward(Communicator& ring, Backend& be, RingBuffers& rb, const RingShape& s,
                             const RingPlan& plan, const float* q, const float* k, const float* v, const float* out,
                             const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  check(ring, plan);
  const int steps = plan.steps;
  const int n = ring.size(), r = ring.rank();
  const int64_t kv_elems = static_cast<int64_t>(s.b) * s.s * s.h_kv * s.d;
  const int64_t q_elems = static_cast<int64_t>(s.b) * s.s * s.h * s.d;
  const size_t kv_bytes = static_cast<size_t>(kv_elems) * sizeof(float);

  ensure_buffer(be, rb.delta, static_cast<int64_t>(s.b) * s.h * s.s);
  be.attention_backward_delta(block_args(s, plan, r, r), out, dout, rb.delta.f32());
  be.fill(dq, 0.0f, q_elems);

  if (steps == 1) {  // one block, this rank's own: no copies, no travel
    be.fill(dk, 0.0f, kv_elems);
    be.fill(dv, 0.0f, kv_elems);
    if (sees(plan, n, r, r))
      be.attention_backward(block_args(s, plan, r, r), q, k, v, dout, lse, rb.delta.f32(), dq, dk, dv);
    return;
  }

  ensure_buffer(be, rb.kv[0], 2 * kv_elems);
  ensure_buffer(be, rb.kv[1], 2 * kv_elems);
  be.copy(rb.kv[0].f32(), k, kv_bytes);
  be.copy(rb.kv[0].f32() + kv_elems, v, kv_bytes);
  // mine: this step's contribution; acc_out: the sum sent on last step; acc_in: the partial
  // sum arriving for this step's block.
  ensure_buffer(be, rb.mine, 2 * kv_elems);
  ensure_buffer(be, rb.acc_out, 2 * kv_elems);
  ensure_buffer(be, rb.acc_in, 2 * kv_elems);

  for (int t = 0; t < steps; ++t) {
    const int src = wrap(r - t, n);
    float* cur = rb.kv[t % 2].f32();
    std::vector<P2POp>& ops = rb.ops;
    ops.clear();
    if (t + 1 < steps) {
      ops.push_back({P2POp::kSend, cur, static_cast<size_t>(2 * kv_elems), wrap(r + 1, n)});
      ops.push_back({P2POp::kRecv, rb.kv[(t + 1) % 2].f32(), static_cast<size_t>(2 * kv_elems), wrap(r - 1, n)});
    }
    if (t > 0) {  // pass on last step's sum, receive the partial sum for this step's block
      ops.push_back({P2POp::kSend, rb.acc_out.f32(), static_cast<size_t>(2 * kv_elems), wrap(r + 1, n)});
      ops.push_back({P2POp::kRecv, rb.acc_in.f32(), static_cast<size_t>(2 * kv_elems), wrap(r - 1, n)});
    }
    Pending pending = ops.empty() ? nullptr : ring.exchange(ops, DType::kF32);

    float* mine = rb.mine.f32();
    be.fill(mine, 0.0f, 2 * kv_elems);
    if (sees(plan, n, r, src)) {
      const AttentionArgs a = block_args(s, plan, r, src);
      be.attention_backward(a, q, cur, cur + kv_elems, dout, lse, rb.delta.f32(), dq, mine, mine + kv_elems);
    }
    if (pending) pending->wait();
    if (t > 0) be.add(mine, rb.acc_in.f32(), 2 * kv_elems);
    std::swap(rb.mine, rb.acc_out);
  }
  // acc_out holds the complete gradient of the block last visited, (r - steps + 1): the plan
  // guarantees no member beyond that hop sees it. Its home is steps - 1 hops back (one hop
  // forward round a full ring), so one direct exchange brings every block home.
  float* home = rb.acc_in.f32();
  rb.ops.clear();
  rb.ops.push_back({P2POp::kSend, rb.acc_out.f32(), static_cast<size_t>(2 * kv_elems), wrap(r - steps + 1, n)});
  rb.ops.push_back({P2POp::kRecv, home, static_cast<size_t>(2 * kv_elems), wrap(r + steps - 1, n)});
  ring.exchange(rb.ops, DType::kF32)->wait();
  be.copy(dk, home, kv_bytes);
  be.copy(dv, home + kv_elems, kv_bytes);
}

}  // namespace ringtrain
