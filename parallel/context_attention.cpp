#include "parallel/context_attention.h"

#include <algorithm>

#include "parallel/ring_attention.h"
#include "parallel/ulysses.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

int ulysses_size(const ContextAttention& ctx) { return ctx.ulysses ? ctx.ulysses->size() : 1; }

// Positions of every ring member's frame: member j's frame is the union (in ulysses-rank
// order) of the tokens of cp ranks j*u .. j*u+u-1.
std::vector<std::vector<int32_t>> frame_positions(const ContextAttention& ctx) {
  const int u = ulysses_size(ctx);
  const int n = static_cast<int>(ctx.member_positions.size()) / u;
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < u; ++i) {
      const auto& p = ctx.member_positions[static_cast<size_t>(j * u + i)];
      out[static_cast<size_t>(j)].insert(out[static_cast<size_t>(j)].end(), p.begin(), p.end());
    }
  return out;
}

int own_member(const ContextAttention& ctx) {
  return ctx.ring->rank() * ulysses_size(ctx) + (ctx.ulysses ? ctx.ulysses->rank() : 0);
}

AttentionArgs local_args(const ContextAttention& ctx, const LocalAttentionShape& s) {
  const auto& p = ctx.member_positions[static_cast<size_t>(own_member(ctx))];
  AttentionArgs a;
  a.b = s.b;
  a.s_q = a.s_k = s.s_local;
  a.h = s.h;
  a.h_kv = s.h_kv;
  a.d = s.d;
  a.causal = ctx.causal;
  a.q_pos = p.data();
  a.k_pos = p.data();
  return a;
}

}  // namespace

void context_attention_forward(const ContextAttention& ctx, const LocalAttentionShape& s,
                               const float* q, const float* k, const float* v, float* out,
                               ContextAttentionSaved* saved) {
  RT_CHECK(ctx.ring != nullptr, "context attention without a ring communicator");
  const int u = ulysses_size(ctx);
  const size_t q_elems = static_cast<size_t>(s.b) * s.s_local * s.h * s.d;
  if (!ctx.cross_rank) {  // control: each rank attends to its own tokens only
    saved->lse.resize(static_cast<size_t>(s.b) * s.h * s.s_local);
    attention_forward(local_args(ctx, s), q, k, v, out, saved->lse.data());
    saved->out.clear();
    return;
  }
  const auto positions = frame_positions(ctx);
  RingShape rs{s.b, s.s_local * u, s.h / u, s.h_kv / u, s.d, ctx.causal};
  saved->lse.resize(static_cast<size_t>(rs.b) * rs.h * rs.s);
  if (u == 1) {
    ring_attention_forward(*ctx.ring, rs, positions, ctx.ring->size(), q, k, v, out, saved->lse.data());
    saved->out.clear();
    return;
  }
  const size_t kv_elems = static_cast<size_t>(s.b) * s.s_local * s.h_kv * s.d;
  std::vector<float> qf(q_elems), kf(kv_elems), vf(kv_elems);
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, q, qf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, k, kf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, v, vf.data());
  saved->out.resize(q_elems);
  ring_attention_forward(*ctx.ring, rs, positions, ctx.ring->size(), qf.data(), kf.data(), vf.data(),
                         saved->out.data(), saved->lse.data());
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, saved->out.data(), out);
}

void context_attention_backward(const ContextAttention& ctx, const LocalAttentionShape& s,
                                const float* q, const float* k, const float* v, const float* out,
                                const float* dout, const ContextAttentionSaved& saved, float* dq,
                                float* dk, float* dv) {
  const int u = ulysses_size(ctx);
  const size_t q_elems = static_cast<size_t>(s.b) * s.s_local * s.h * s.d;
  const size_t kv_elems = static_cast<size_t>(s.b) * s.s_local * s.h_kv * s.d;
  if (!ctx.cross_rank) {
    const AttentionArgs a = local_args(ctx, s);
    std::vector<float> delta(static_cast<size_t>(s.b) * s.h * s.s_local);
    attention_backward_delta(a, out, dout, delta.data());
    std::fill(dq, dq + q_elems, 0.0f);
    std::fill(dk, dk + kv_elems, 0.0f);
    std::fill(dv, dv + kv_elems, 0.0f);
    attention_backward(a, q, k, v, dout, saved.lse.data(), delta.data(), dq, dk, dv);
    return;
  }
  const auto positions = frame_positions(ctx);
  RingShape rs{s.b, s.s_local * u, s.h / u, s.h_kv / u, s.d, ctx.causal};
  if (u == 1) {
    ring_attention_backward(*ctx.ring, rs, positions, ctx.ring->size(), q, k, v, out, dout,
                            saved.lse.data(), dq, dk, dv);
    return;
  }
  std::vector<float> qf(q_elems), kf(kv_elems), vf(kv_elems), dof(q_elems);
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, q, qf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, k, kf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, v, vf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, dout, dof.data());
  std::vector<float> dqf(q_elems), dkf(kv_elems), dvf(kv_elems);
  ring_attention_backward(*ctx.ring, rs, positions, ctx.ring->size(), qf.data(), kf.data(), vf.data(),
                          saved.out.data(), dof.data(), saved.lse.data(), dqf.data(), dkf.data(),
                          dvf.data());
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, dqf.data(), dq);
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, dkf.data(), dk);
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, dvf.data(), dv);
}

}  // namespace ringtrain
