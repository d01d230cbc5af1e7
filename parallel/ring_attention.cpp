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
#include "parallel/ring_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

int wrap(int i, int n) { return ((i % n) + n) % n; }

bool block_fully_masked(const RingShape& s, const std::vector<int32_t>& qp,
                        const std::vector<int32_t>& kp) {
  if (!s.causal || qp.empty() || kp.empty()) return false;
  return *std::min_element(kp.begin(), kp.end()) > *std::max_element(qp.begin(), qp.end());
}

AttentionArgs block_args(const RingShape& s, const std::vector<int32_t>& qp,
                         const std::vector<int32_t>& kp) {
  AttentionArgs a;
  a.b = s.b;
  a.s_q = s.s;
  a.s_k = s.s;
  a.h = s.h;
  a.h_kv = s.h_kv;
  a.d = s.d;
  a.causal = s.causal;
  a.q_pos = qp.data();
  a.k_pos = kp.data();
  return a;
}

// The calling thread's ring buffers, reused from call to call (a steady-state training step
// allocates none): two K|V blocks (the visiting one and the next in flight), a block's
// partial output, and in the backward the dK|dV accumulators.
struct RingBuffers {
  std::vector<float> kv[2], block_out, block_lse, delta, mine, acc_out, acc_in;
  std::vector<P2POp> ops;
};
RingBuffers& ring_buffers() {
  thread_local RingBuffers b;
  return b;
}

}  // namespace

void ring_attention_forward(Communicator& ring, const RingShape& s,
                            const std::vector<std::vector<int32_t>>& key_positions, int steps,
                            const float* q, const float* k, const float* v, float* out,
                            float* lse) {
  const int n = ring.size(), r = ring.rank();
  RT_CHECK(static_cast<int>(key_positions.size()) == n, "ring: positions for ", key_positions.size(),
           " members, ring of ", n);
  RT_CHECK(steps >= 1 && steps <= n, "ring: steps ", steps, " of ", n);
  const size_t kv_elems = static_cast<size_t>(s.b) * s.s * s.h_kv * s.d;
  const size_t q_elems = static_cast<size_t>(s.b) * s.s * s.h * s.d;
  const size_t lse_elems = static_cast<size_t>(s.b) * s.h * s.s;
  RingBuffers& rb = ring_buffers();
  // Two K|V buffers: the visiting block and the next one in flight (one block alone: no copy).
  std::vector<float>* kv = rb.kv;
  const bool travels = steps > 1;
  if (travels) {
    ws::ensure_size(kv[0], 2 * kv_elems);
    ws::ensure_size(kv[1], 2 * kv_elems);
    std::copy(k, k + kv_elems, kv[0].begin());
    std::copy(v, v + kv_elems, kv[0].begin() + static_cast<std::ptrdiff_t>(kv_elems));
    ws::ensure_size(rb.block_out, q_elems);
    ws::ensure_size(rb.block_lse, lse_elems);
  }
  std::vector<float>& block_out = rb.block_out;
  std::vector<float>& block_lse = rb.block_lse;
  std::fill(out, out + q_elems, 0.0f);
  std::fill(lse, lse + lse_elems, -std::numeric_limits<float>::infinity());
  const std::vector<int32_t>& qp = key_positions[static_cast<size_t>(r)];

  for (int t = 0; t < steps; ++t) {
    const int src = wrap(r - t, n);
    float* cur = travels ? kv[t % 2].data() : nullptr;
    Pending next;
    if (t + 1 < steps) {
      rb.ops.clear();
      rb.ops.push_back({P2POp::kSend, cur, 2 * kv_elems, wrap(r + 1, n)});
      rb.ops.push_back({P2POp::kRecv, kv[(t + 1) % 2].data(), 2 * kv_elems, wrap(r - 1, n)});
      next = ring.exchange(rb.ops, DType::kF32);
    }
    const std::vector<int32_t>& kp = key_positions[static_cast<size_t>(src)];
    if (!block_fully_masked(s, qp, kp)) {
      const AttentionArgs a = block_args(s, qp, kp);
      if (!travels) {
        attention_forward(a, q, k, v, out, lse);
      } else if (t == 0) {
        attention_forward(a, q, cur, cur + kv_elems, out, lse);
      } else {
        attention_forward(a, q, cur, cur + kv_elems, block_out.data(), block_lse.data());
        attention_merge(s.b, s.s, s.h, s.d, out, lse, block_out.data(), block_lse.data());
      }
    }
    if (next) next->wait();
  }
}

void ring_attention_backward(Communicator& ring, const RingShape& s,
                             const std::vector<std::vector<int32_t>>& key_positions, int steps,
                             const float* q, const float* k, const float* v, const float* out,
                             const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  const int n = ring.size(), r = ring.rank();
  RT_CHECK(static_cast<int>(key_positions.size()) == n && steps >= 1 && steps <= n,
           "ring backward: bad positions or steps");
  const size_t kv_elems = static_cast<size_t>(s.b) * s.s * s.h_kv * s.d;
  const size_t q_elems = static_cast<size_t>(s.b) * s.s * s.h * s.d;
  const std::vector<int32_t>& qp = key_positions[static_cast<size_t>(r)];

  RingBuffers& rb = ring_buffers();
  std::vector<float>& delta = rb.delta;
  ws::ensure_size(delta, static_cast<size_t>(s.b) * s.h * s.s);
  {
    const AttentionArgs a = block_args(s, qp, qp);
    attention_backward_delta(a, out, dout, delta.data());
  }
  std::fill(dq, dq + q_elems, 0.0f);

  if (steps == 1) {  // one block, this rank's own: no copies, no travel
    std::fill(dk, dk + kv_elems, 0.0f);
    std::fill(dv, dv + kv_elems, 0.0f);
    if (!block_fully_masked(s, qp, qp))
      attention_backward(block_args(s, qp, qp), q, k, v, dout, lse, delta.data(), dq, dk, dv);
    return;
  }

  std::vector<float>* kv = rb.kv;
  ws::ensure_size(kv[0], 2 * kv_elems);
  ws::ensure_size(kv[1], 2 * kv_elems);
  std::copy(k, k + kv_elems, kv[0].begin());
  std::copy(v, v + kv_elems, kv[0].begin() + static_cast<std::ptrdiff_t>(kv_elems));
  // mine: this step's contribution; acc[2]: the accumulated dK|dV sent on last step and the
  // partial sum arriving for this step's block.
  std::vector<float>& mine = rb.mine;
  std::vector<float>& acc_out = rb.acc_out;
  std::vector<float>& acc_in = rb.acc_in;
  ws::ensure_size(mine, 2 * kv_elems);
  ws::ensure_size(acc_out, 2 * kv_elems);
  ws::ensure_size(acc_in, 2 * kv_elems);

  for (int t = 0; t < steps; ++t) {
    const int src = wrap(r - t, n);
    float* cur = kv[t % 2].data();
    std::vector<P2POp>& ops = rb.ops;
    ops.clear();
    if (t + 1 < steps) {
      ops.push_back({P2POp::kSend, cur, 2 * kv_elems, wrap(r + 1, n)});
      ops.push_back({P2POp::kRecv, kv[(t + 1) % 2].data(), 2 * kv_elems, wrap(r - 1, n)});
    }
    if (t > 0) {  // pass on last step's sum, receive the partial sum for this step's block
      ops.push_back({P2POp::kSend, acc_out.data(), 2 * kv_elems, wrap(r + 1, n)});
      ops.push_back({P2POp::kRecv, acc_in.data(), 2 * kv_elems, wrap(r - 1, n)});
    }
    Pending pending = ops.empty() ? nullptr : ring.exchange(ops, DType::kF32);

    std::fill(mine.begin(), mine.end(), 0.0f);
    const std::vector<int32_t>& kp = key_positions[static_cast<size_t>(src)];
    if (!block_fully_masked(s, qp, kp)) {
      const AttentionArgs a = block_args(s, qp, kp);
      attention_backward(a, q, cur, cur + kv_elems, dout, lse, delta.data(), dq, mine.data(),
                         mine.data() + kv_elems);
    }
    if (pending) pending->wait();
    if (t > 0)
      for (size_t i = 0; i < mine.size(); ++i) mine[i] += acc_in[i];
    std::swap(mine, acc_out);
  }
  // acc_out holds the complete gradient of the block last visited, (r - steps + 1); with a
  // full ring that block's home is r + 1, one hop away. With a partial ring (steps < n, the
  // eval-only control) blocks do not complete their round, so only steps == 1 is allowed.
  float* home = acc_in.data();
  if (steps == n && n > 1) {
    rb.ops.clear();
    rb.ops.push_back({P2POp::kSend, acc_out.data(), 2 * kv_elems, wrap(r + 1, n)});
    rb.ops.push_back({P2POp::kRecv, home, 2 * kv_elems, wrap(r - 1, n)});
    ring.exchange(rb.ops, DType::kF32)->wait();
  } else {
    RT_CHECK(steps == n || steps == 1, "ring backward over a partial ring");
    home = acc_out.data();
  }
  std::copy(home, home + kv_elems, dk);
  std::copy(home + kv_elems, home + 2 * kv_elems, dv);
}

}  // namespace ringtrain
