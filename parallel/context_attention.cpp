#include "parallel/context_attention.h"

#include "src/core/error.h"

namespace ringtrain {
namespace {

int ulysses_size(const ContextAttention& ctx) { return ctx.ulysses ? ctx.ulysses->size() : 1; }

int own_member(const ContextAttention& ctx) {
  return ctx.ring->rank() * ulysses_size(ctx) + (ctx.ulysses ? ctx.ulysses->rank() : 0);
}

AttentionArgs local_args(const ContextAttention& ctx, const LocalAttentionShape& s) {
  const int32_t* p = ctx.member_positions_dev[static_cast<size_t>(own_member(ctx))].data<int32_t>();
  AttentionArgs a;
  a.b = s.b;
  a.s_q = a.s_k = s.s_local;
  a.h = s.h;
  a.h_kv = s.h_kv;
  a.d = s.d;
  a.causal = ctx.causal;
  a.q_pos = p;
  a.k_pos = p;
  return a;
}

Tensor upload_positions(Backend& be, const std::vector<int32_t>& p) {
  Tensor t = be.alloc(static_cast<int64_t>(p.size()), DType::kI32);
  be.upload(t.raw(), p.data(), p.size() * sizeof(int32_t));
  return t;
}

}  // namespace

void context_attention_prepare(ContextAttention& ctx, Backend& be) {
  RT_CHECK(ctx.ring != nullptr, "context attention without a ring communicator");
  ctx.backend = &be;
  // Member j of the ring attends with the union (in ulysses-rank order) of the tokens of cp
  // ranks j*u .. j*u+u-1.
  const int u = ulysses_size(ctx);
  const int n = static_cast<int>(ctx.member_positions.size()) / u;
  ctx.frame_positions.assign(static_cast<size_t>(n), {});
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < u; ++i) {
      const auto& p = ctx.member_positions[static_cast<size_t>(j * u + i)];
      ctx.frame_positions[static_cast<size_t>(j)].insert(ctx.frame_positions[static_cast<size_t>(j)].end(), p.begin(),
                                                         p.end());
    }
  ctx.frame_positions_dev.clear();
  ctx.member_positions_dev.clear();
  for (const auto& p : ctx.frame_positions) ctx.frame_positions_dev.push_back(upload_positions(be, p));
  for (const auto& p : ctx.member_positions) ctx.member_positions_dev.push_back(upload_positions(be, p));
  ctx.ring_positions = RingPositions{&ctx.frame_positions, {}};
  for (const Tensor& t : ctx.frame_positions_dev) ctx.ring_positions.device.push_back(t.data<int32_t>());
}

void context_attention_forward(ContextAttention& ctx, const LocalAttentionShape& s, const float* q, const float* k,
                               const float* v, float* out, ContextAttentionSaved* saved) {
  RT_CHECK(ctx.backend != nullptr, "context attention used before context_attention_prepare");
  Backend& be = *ctx.backend;
  const int u = ulysses_size(ctx);
  const int64_t q_elems = static_cast<int64_t>(s.b) * s.s_local * s.h * s.d;
  if (!ctx.cross_rank) {  // control: each rank attends to its own tokens only
    ensure_buffer(be, saved->lse, static_cast<int64_t>(s.b) * s.h * s.s_local);
    be.attention_forward(local_args(ctx, s), q, k, v, out, saved->lse.f32());
    return;
  }
  const RingPositions& positions = ctx.ring_positions;
  RingShape rs{s.b, s.s_local * u, s.h / u, s.h_kv / u, s.d, ctx.causal};
  ensure_buffer(be, saved->lse, static_cast<int64_t>(rs.b) * rs.h * rs.s);
  if (u == 1) {
    ring_attention_forward(*ctx.ring, be, ctx.ring_buffers, rs, positions, ctx.ring->size(), q, k, v, out,
                           saved->lse.f32());
    return;
  }
  const int64_t kv_elems = static_cast<int64_t>(s.b) * s.s_local * s.h_kv * s.d;
  ensure_buffer(be, ctx.qf, q_elems);
  ensure_buffer(be, ctx.kf, kv_elems);
  ensure_buffer(be, ctx.vf, kv_elems);
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, q, ctx.qf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, k, ctx.kf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, v, ctx.vf.f32());
  ensure_buffer(be, saved->out, q_elems);
  ring_attention_forward(*ctx.ring, be, ctx.ring_buffers, rs, positions, ctx.ring->size(), ctx.qf.f32(),
                         ctx.kf.f32(), ctx.vf.f32(), saved->out.f32(), saved->lse.f32());
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, saved->out.f32(), out);
}

void context_attention_backward(ContextAttention& ctx, const LocalAttentionShape& s, const float* q,
                                const float* k, const float* v, const float* out, const float* dout,
                                const ContextAttentionSaved& saved, float* dq, float* dk, float* dv) {
  RT_CHECK(ctx.backend != nullptr, "context attention used before context_attention_prepare");
  Backend& be = *ctx.backend;
  const int u = ulysses_size(ctx);
  const int64_t q_elems = static_cast<int64_t>(s.b) * s.s_local * s.h * s.d;
  const int64_t kv_elems = static_cast<int64_t>(s.b) * s.s_local * s.h_kv * s.d;
  if (!ctx.cross_rank) {
    const AttentionArgs a = local_args(ctx, s);
    ensure_buffer(be, ctx.delta, static_cast<int64_t>(s.b) * s.h * s.s_local);
    be.attention_backward_delta(a, out, dout, ctx.delta.f32());
    be.fill(dq, 0.0f, q_elems);
    be.fill(dk, 0.0f, kv_elems);
    be.fill(dv, 0.0f, kv_elems);
    be.attention_backward(a, q, k, v, dout, saved.lse.f32(), ctx.delta.f32(), dq, dk, dv);
    return;
  }
  const RingPositions& positions = ctx.ring_positions;
  RingShape rs{s.b, s.s_local * u, s.h / u, s.h_kv / u, s.d, ctx.causal};
  if (u == 1) {
    ring_attention_backward(*ctx.ring, be, ctx.ring_buffers, rs, positions, ctx.ring->size(), q, k, v, out, dout,
                            saved.lse.f32(), dq, dk, dv);
    return;
  }
  for (Tensor* buf : {&ctx.qf, &ctx.dof, &ctx.dqf}) ensure_buffer(be, *buf, q_elems);
  for (Tensor* buf : {&ctx.kf, &ctx.vf, &ctx.dkf, &ctx.dvf}) ensure_buffer(be, *buf, kv_elems);
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, q, ctx.qf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, k, ctx.kf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, v, ctx.vf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, dout, ctx.dof.f32());
  ring_attention_backward(*ctx.ring, be, ctx.ring_buffers, rs, positions, ctx.ring->size(), ctx.qf.f32(),
                          ctx.kf.f32(), ctx.vf.f32(), saved.out.f32(), ctx.dof.f32(), saved.lse.f32(),
                          ctx.dqf.f32(), ctx.dkf.f32(), ctx.dvf.f32());
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, ctx.dqf.f32(), dq);
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, ctx.dkf.f32(), dk);
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, ctx.dvf.f32(), dv);
}

}  // namespace ringtrain
