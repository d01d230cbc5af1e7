#include "parallel/context_attention.h"

#include <algorithm>

#include "parallel/ring_attention.h"
#include "parallel/ulysses.h"
#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

int ulysses_size(const ContextAttention& ctx) { return ctx.ulysses ? ctx.ulysses->size() : 1; }

// The calling thread's buffers, reused from call to call: the frame positions and, under
// Ulysses, the head-sharded frame tensors.
struct FrameBuffers {
  std::vector<std::vector<int32_t>> positions;
  std::vector<float> qf, kf, vf, dof, dqf, dkf, dvf, delta;
};
FrameBuffers& frame_buffers() {
  thread_local FrameBuffers b;
  return b;
}

// Positions of every ring member's frame: member j's frame is the union (in ulysses-rank
// order) of the tokens of cp ranks j*u .. j*u+u-1. Without Ulysses, the members' own.
const std::vector<std::vector<int32_t>>& frame_positions(const ContextAttention& ctx) {
  const int u = ulysses_size(ctx);
  if (u == 1) return ctx.member_positions;
  const int n = static_cast<int>(ctx.member_positions.size()) / u;
  std::vector<std::vector<int32_t>>& out = frame_buffers().positions;
  if (out.size() != static_cast<size_t>(n)) {
    ws::note_workspace_growth();
    out.resize(static_cast<size_t>(n));
  }
  for (int j = 0; j < n; ++j) {
    size_t len = 0;
    for (int i = 0; i < u; ++i) len += ctx.member_positions[static_cast<size_t>(j * u + i)].size();
    std::vector<int32_t>& dst = out[static_cast<size_t>(j)];
    ws::ensure_size(dst, len);
    size_t at = 0;
    for (int i = 0; i < u; ++i) {
      const auto& p = ctx.member_positions[static_cast<size_t>(j * u + i)];
      std::copy(p.begin(), p.end(), dst.begin() + static_cast<std::ptrdiff_t>(at));
      at += p.size();
    }
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
    ws::ensure_size(saved->lse, static_cast<size_t>(s.b) * s.h * s.s_local);
    attention_forward(local_args(ctx, s), q, k, v, out, saved->lse.data());
    saved->out.clear();
    return;
  }
  const auto& positions = frame_positions(ctx);
  RingShape rs{s.b, s.s_local * u, s.h / u, s.h_kv / u, s.d, ctx.causal};
  ws::ensure_size(saved->lse, static_cast<size_t>(rs.b) * rs.h * rs.s);
  if (u == 1) {
    ring_attention_forward(*ctx.ring, rs, positions, ctx.ring->size(), q, k, v, out, saved->lse.data());
    saved->out.clear();
    return;
  }
  const size_t kv_elems = static_cast<size_t>(s.b) * s.s_local * s.h_kv * s.d;
  FrameBuffers& fb = frame_buffers();
  ws::ensure_size(fb.qf, q_elems);
  ws::ensure_size(fb.kf, kv_elems);
  ws::ensure_size(fb.vf, kv_elems);
  std::vector<float>& qf = fb.qf;
  std::vector<float>& kf = fb.kf;
  std::vector<float>& vf = fb.vf;
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, q, qf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, k, kf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, v, vf.data());
  ws::ensure_size(saved->out, q_elems);
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
    std::vector<float>& delta = frame_buffers().delta;
    ws::ensure_size(delta, static_cast<size_t>(s.b) * s.h * s.s_local);
    attention_backward_delta(a, out, dout, delta.data());
    std::fill(dq, dq + q_elems, 0.0f);
    std::fill(dk, dk + kv_elems, 0.0f);
    std::fill(dv, dv + kv_elems, 0.0f);
    attention_backward(a, q, k, v, dout, saved.lse.data(), delta.data(), dq, dk, dv);
    return;
  }
  const auto& positions = frame_positions(ctx);
  RingShape rs{s.b, s.s_local * u, s.h / u, s.h_kv / u, s.d, ctx.causal};
  if (u == 1) {
    ring_attention_backward(*ctx.ring, rs, positions, ctx.ring->size(), q, k, v, out, dout,
                            saved.lse.data(), dq, dk, dv);
    return;
  }
  FrameBuffers& fb = frame_buffers();
  for (auto* buf : {&fb.qf, &fb.dof, &fb.dqf}) ws::ensure_size(*buf, q_elems);
  for (auto* buf : {&fb.kf, &fb.vf, &fb.dkf, &fb.dvf}) ws::ensure_size(*buf, kv_elems);
  std::vector<float>& qf = fb.qf;
  std::vector<float>& kf = fb.kf;
  std::vector<float>& vf = fb.vf;
  std::vector<float>& dof = fb.dof;
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, q, qf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, k, kf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, v, vf.data());
  ulysses_to_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, dout, dof.data());
  std::vector<float>& dqf = fb.dqf;
  std::vector<float>& dkf = fb.dkf;
  std::vector<float>& dvf = fb.dvf;
  ring_attention_backward(*ctx.ring, rs, positions, ctx.ring->size(), qf.data(), kf.data(), vf.data(),
                          saved.out.data(), dof.data(), saved.lse.data(), dqf.data(), dkf.data(),
                          dvf.data());
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h, s.d, dqf.data(), dq);
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, dkf.data(), dk);
  ulysses_from_frame(*ctx.ulysses, s.b, s.s_local, s.h_kv, s.d, dvf.data(), dv);
}

}  // namespace ringtrain
