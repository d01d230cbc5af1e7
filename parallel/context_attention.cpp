#include "parallel/context_attention.h"

#include <algorithm>

#include "src/core/error.h"

namespace ringtrain {
namespace {

int ulysses_size(const ContextAttention& ctx) { return ctx.ulysses ? ctx.ulysses->size() : 1; }

int own_member(const ContextAttention& ctx) {
  return ctx.ring->rank() * ulysses_size(ctx) + (ctx.ulysses ? ctx.ulysses->rank() : 0);
}

AttentionArgs local_args(const ContextAttention& ctx, const LocalAttentionShape& s) {
  const size_t me = static_cast<size_t>(own_member(ctx));
  const int32_t* p = ctx.member_positions_dev[me].data<int32_t>();
  AttentionArgs a;
  a.b = s.b;
  a.s_q = a.s_k = s.s_local;
  a.h = s.h;
  a.h_kv = s.h_kv;
  a.d = s.d;
  a.causal = ctx.causal;
  a.q_pos = p;
  a.k_pos = p;
  if (ctx.has_docs) a.q_doc = a.k_doc = ctx.member_docs_dev[me].data<int32_t>();
  a.window = ctx.window;
  return a;
}

void upload_ints(Backend& be, Tensor& t, const std::vector<int32_t>& v) {
  ensure_buffer(be, t, static_cast<int64_t>(v.size()), DType::kI32);
  be.upload(t.raw(), v.data(), v.size() * sizeof(int32_t));
}

// Plans the ring from the frames' runs (frame_runs[f] holds one entry per sample).
void plan_ring(ContextAttention& ctx) {
  ctx.plan.steps = plan_visits(ctx.frame_runs, ctx.causal, ctx.window, &ctx.plan.visible);
  ctx.plan.window = ctx.window;
  ctx.plan.pos.clear();
  for (const Tensor& t : ctx.frame_positions_dev) ctx.plan.pos.push_back(t.data<int32_t>());
  ctx.plan.doc.clear();
  if (ctx.has_docs)
    for (const Tensor& t : ctx.frame_docs_dev) ctx.plan.doc.push_back(t.data<int32_t>());
}

// The K/V to send: as they are, or the kv heads each member reads gathered into
// [rows][u * per_member][d]; returns the heads per token of what is sent.
int kv_to_send(ContextAttention& ctx, const LocalAttentionShape& s, const float*& k, const float*& v) {
  const int u = ulysses_size(ctx);
  if (s.h_kv % u == 0) return s.h_kv;
  Backend& be = *ctx.backend;
  if (ctx.kv_split_heads[0] != s.h || ctx.kv_split_heads[1] != s.h_kv) {  // first call: plan once
    ctx.kv_map = ulysses_kv_split(s.h, s.h_kv, u).map;
    upload_ints(be, ctx.kv_map_dev, ctx.kv_map);
    ctx.kv_split_heads[0] = s.h;
    ctx.kv_split_heads[1] = s.h_kv;
  }
  const int sent = static_cast<int>(ctx.kv_map.size());
  const int64_t rows = static_cast<int64_t>(s.b) * s.s_local, n = rows * sent * s.d;
  ensure_buffer(be, ctx.kx, n);
  ensure_buffer(be, ctx.vx, n);
  be.gather_heads(k, ctx.kx.f32(), rows, s.h_kv, sent, s.d, ctx.kv_map_dev.data<int32_t>());
  be.gather_heads(v, ctx.vx.f32(), rows, s.h_kv, sent, s.d, ctx.kv_map_dev.data<int32_t>());
  k = ctx.kx.f32();
  v = ctx.vx.f32();
  return sent;
}

}  // namespace

UlyssesKvSplit ulysses_kv_split(int h, int h_kv, int u) {
  RT_CHECK(u > 0 && h % u == 0 && h_kv > 0 && h % h_kv == 0, "ulysses: ", h, " heads, ", h_kv, " kv heads over ",
           u, " members");
  UlyssesKvSplit split;
  if (h_kv % u == 0) {
    split.per_member = h_kv / u;
    return split;
  }
  const int group = h / h_kv, mine = h / u;  // query heads per kv head, per member
  split.per_member = group % mine == 0 ? 1 : mine;
  for (int i = 0; i < u; ++i)
    for (int j = 0; j < split.per_member; ++j)
      split.map.push_back((i * mine + j * (mine / split.per_member)) / group);
  return split;
}

void context_attention_prepare(ContextAttention& ctx, Backend& be) {
  RT_CHECK(ctx.ring != nullptr, "context attention without a ring communicator");
  ctx.backend = &be;
  // Member j of the ring attends with the union (in ulysses-rank order) of the tokens of cp
  // ranks j*u .. j*u+u-1.
  const int u = ulysses_size(ctx);
  const int n = static_cast<int>(ctx.member_positions.size()) / u;
  // Called again for every micro-batch that brings its own split: the vectors and device
  // buffers are resized and refilled, not replaced, so their storage is reused.
  ctx.frame_positions.resize(static_cast<size_t>(n));
  for (auto& f : ctx.frame_positions) f.clear();
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < u; ++i) {
      const auto& p = ctx.member_positions[static_cast<size_t>(j * u + i)];
      ctx.frame_positions[static_cast<size_t>(j)].insert(ctx.frame_positions[static_cast<size_t>(j)].end(), p.begin(),
                                                         p.end());
    }
  ctx.frame_positions_dev.resize(static_cast<size_t>(n));
  ctx.member_positions_dev.resize(ctx.member_positions.size());
  for (int j = 0; j < n; ++j) upload_ints(be, ctx.frame_positions_dev[static_cast<size_t>(j)], ctx.frame_positions[static_cast<size_t>(j)]);
  for (size_t m = 0; m < ctx.member_positions.size(); ++m) upload_ints(be, ctx.member_positions_dev[m], ctx.member_positions[m]);
  ctx.has_docs = false;
  ctx.frame_runs.resize(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    ctx.frame_runs[static_cast<size_t>(j)].resize(1);
    const auto& p = ctx.frame_positions[static_cast<size_t>(j)];
    frame_runs(p.data(), nullptr, static_cast<int>(p.size()), &ctx.frame_runs[static_cast<size_t>(j)][0]);
  }
  plan_ring(ctx);
}

void context_attention_set_documents(ContextAttention& ctx, int b, const int32_t* docs) {
  RT_CHECK(ctx.backend != nullptr, "context attention used before context_attention_prepare");
  if (docs == nullptr) {
    if (ctx.has_docs) context_attention_prepare(ctx, *ctx.backend);
    return;
  }
  Backend& be = *ctx.backend;
  const int members = static_cast<int>(ctx.member_positions.size());
  const int n = static_cast<int>(ctx.frame_positions.size());
  int64_t seq_len = 0;
  for (const auto& p : ctx.member_positions) seq_len += static_cast<int64_t>(p.size());
  ctx.has_docs = true;
  ctx.member_docs.resize(static_cast<size_t>(members));
  ctx.member_docs_dev.resize(static_cast<size_t>(members));
  for (int m = 0; m < members; ++m) {
    const auto& p = ctx.member_positions[static_cast<size_t>(m)];
    auto& md = ctx.member_docs[static_cast<size_t>(m)];
    md.resize(static_cast<size_t>(b) * p.size());
    for (int bi = 0; bi < b; ++bi)
      for (size_t t = 0; t < p.size(); ++t) md[bi * p.size() + t] = docs[bi * seq_len + p[t]];
    upload_ints(be, ctx.member_docs_dev[static_cast<size_t>(m)], md);
  }
  ctx.frame_docs.resize(static_cast<size_t>(n));
  ctx.frame_docs_dev.resize(static_cast<size_t>(n));
  ctx.frame_runs.resize(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    const auto& p = ctx.frame_positions[static_cast<size_t>(j)];
    auto& fd = ctx.frame_docs[static_cast<size_t>(j)];
    fd.resize(static_cast<size_t>(b) * p.size());
    for (int bi = 0; bi < b; ++bi)
      for (size_t t = 0; t < p.size(); ++t) fd[bi * p.size() + t] = docs[bi * seq_len + p[t]];
    upload_ints(be, ctx.frame_docs_dev[static_cast<size_t>(j)], fd);
    auto& runs = ctx.frame_runs[static_cast<size_t>(j)];
    runs.resize(static_cast<size_t>(b));
    for (int bi = 0; bi < b; ++bi)
      frame_runs(p.data(), fd.data() + bi * p.size(), static_cast<int>(p.size()), &runs[static_cast<size_t>(bi)]);
  }
  plan_ring(ctx);
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
  if (u == 1) {
    RingShape rs{s.b, s.s_local, s.h, s.h_kv, s.d, ctx.causal};
    ensure_buffer(be, saved->lse, static_cast<int64_t>(rs.b) * rs.h * rs.s);
    ring_attention_forward(*ctx.ring, be, ctx.ring_buffers, rs, ctx.plan, q, k, v, out, saved->lse.f32());
    return;
  }
  const int kv_sent = kv_to_send(ctx, s, k, v);
  RingShape rs{s.b, s.s_local * u, s.h / u, kv_sent / u, s.d, ctx.causal};
  ensure_buffer(be, saved->lse, static_cast<int64_t>(rs.b) * rs.h * rs.s);
  const int64_t kv_elems = static_cast<int64_t>(s.b) * s.s_local * kv_sent * s.d;
  ensure_buffer(be, ctx.qf, q_elems);
  ensure_buffer(be, ctx.kf, kv_elems);
  ensure_buffer(be, ctx.vf, kv_elems);
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, q, ctx.qf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, k, ctx.kf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, v, ctx.vf.f32());
  ensure_buffer(be, saved->out, q_elems);
  ring_attention_forward(*ctx.ring, be, ctx.ring_buffers, rs, ctx.plan, ctx.qf.f32(), ctx.kf.f32(), ctx.vf.f32(),
                         saved->out.f32(), saved->lse.f32());
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
  if (u == 1) {
    RingShape rs{s.b, s.s_local, s.h, s.h_kv, s.d, ctx.causal};
    ring_attention_backward(*ctx.ring, be, ctx.ring_buffers, rs, ctx.plan, q, k, v, out, dout, saved.lse.f32(), dq,
                            dk, dv);
    return;
  }
  const int kv_sent = kv_to_send(ctx, s, k, v);
  const bool duplicated = kv_sent != s.h_kv;
  RingShape rs{s.b, s.s_local * u, s.h / u, kv_sent / u, s.d, ctx.causal};
  const int64_t sent_elems = static_cast<int64_t>(s.b) * s.s_local * kv_sent * s.d;
  for (Tensor* buf : {&ctx.qf, &ctx.dof, &ctx.dqf}) ensure_buffer(be, *buf, q_elems);
  for (Tensor* buf : {&ctx.kf, &ctx.vf, &ctx.dkf, &ctx.dvf}) ensure_buffer(be, *buf, sent_elems);
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, q, ctx.qf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, k, ctx.kf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, v, ctx.vf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, dout, ctx.dof.f32());
  ring_attention_backward(*ctx.ring, be, ctx.ring_buffers, rs, ctx.plan, ctx.qf.f32(), ctx.kf.f32(), ctx.vf.f32(),
                          saved.out.f32(), ctx.dof.f32(), saved.lse.f32(), ctx.dqf.f32(), ctx.dkf.f32(),
                          ctx.dvf.f32());
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, ctx.dqf.f32(), dq);
  if (!duplicated) {
    ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, ctx.dkf.f32(), dk);
    ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h_kv, s.d, ctx.dvf.f32(), dv);
    return;
  }
  // The gradients of a duplicated kv head arrive once per member that read it: summed back.
  const int64_t rows = static_cast<int64_t>(s.b) * s.s_local;
  ensure_buffer(be, ctx.dkx, sent_elems);
  ensure_buffer(be, ctx.dvx, sent_elems);
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, ctx.dkf.f32(), ctx.dkx.f32());
  ulysses_from_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, ctx.dvf.f32(), ctx.dvx.f32());
  be.sum_heads(ctx.dkx.f32(), dk, rows, kv_sent, s.h_kv, s.d, ctx.kv_map_dev.data<int32_t>());
  be.sum_heads(ctx.dvx.f32(), dv, rows, kv_sent, s.h_kv, s.d, ctx.kv_map_dev.data<int32_t>());
}

void context_attention_probs(ContextAttention& ctx, const LocalAttentionShape& s, const float* q, const float* k,
                             const ContextAttentionSaved& saved, const ProbsRequest& req, ContextProbs* out) {
  RT_CHECK(ctx.backend != nullptr, "context attention used before context_attention_prepare");
  Backend& be = *ctx.backend;
  const int u = ctx.cross_rank ? ulysses_size(ctx) : 1;
  const std::vector<int32_t>& frame = !ctx.cross_rank ? ctx.member_positions[static_cast<size_t>(own_member(ctx))]
                                                      : ctx.frame_positions[static_cast<size_t>(ctx.ring->rank())];
  std::vector<int32_t> slot(frame.size(), -1);
  for (size_t i = 0; i < frame.size(); ++i)
    for (size_t r = 0; r < req.rows.size(); ++r)
      if (req.rows[r] == frame[i]) slot[i] = static_cast<int32_t>(r);
  upload_ints(be, out->row_slot, slot);
  AttentionProbsArgs& pa = out->args;
  pa = AttentionProbsArgs{};
  pa.seq_len = req.seq_len;
  pa.n_rows = static_cast<int>(req.rows.size());
  pa.row_slot = out->row_slot.data<int32_t>();
  pa.pool = req.pool;
  pa.n_spans = static_cast<int>(req.spans.size() / 2);
  if (pa.n_spans > 0) {
    upload_ints(be, out->spans, req.spans);
    pa.spans = out->spans.data<int32_t>();
  }
  out->heads = s.h / u;
  out->head_offset = u == 1 ? 0 : ctx.ulysses->rank() * out->heads;
  const int64_t bh = static_cast<int64_t>(s.b) * out->heads;
  const int64_t n_rows = std::max<int64_t>(1, bh * pa.n_rows * pa.seq_len);
  const int64_t n_pool = std::max<int64_t>(1, bh * pa.n_pool() * pa.n_pool());
  const int64_t n_stats = bh * pa.seq_len * pa.stat_width();
  ensure_buffer(be, out->rows, n_rows);
  ensure_buffer(be, out->pooled, n_pool);
  ensure_buffer(be, out->stats, n_stats);
  be.fill(out->rows.f32(), 0.0f, n_rows);
  be.fill(out->pooled.f32(), 0.0f, n_pool);
  be.fill(out->stats.f32(), 0.0f, n_stats);
  float* rows = pa.n_rows > 0 ? out->rows.f32() : nullptr;
  float* pooled = pa.pool > 0 ? out->pooled.f32() : nullptr;
  if (!ctx.cross_rank) {
    be.attention_probs(local_args(ctx, s), pa, q, k, saved.lse.f32(), rows, pooled, out->stats.f32());
    return;
  }
  if (u == 1) {
    RingShape rs{s.b, s.s_local, s.h, s.h_kv, s.d, ctx.causal};
    ring_attention_probs(*ctx.ring, be, ctx.ring_buffers, rs, ctx.plan, pa, q, k, saved.lse.f32(), rows, pooled,
                         out->stats.f32());
    return;
  }
  const float* v_unused = k;  // kv_to_send gathers K and V together; only K is read below
  const int kv_sent = kv_to_send(ctx, s, k, v_unused);
  RingShape rs{s.b, s.s_local * u, s.h / u, kv_sent / u, s.d, ctx.causal};
  ensure_buffer(be, ctx.qf, static_cast<int64_t>(s.b) * s.s_local * s.h * s.d);
  ensure_buffer(be, ctx.kf, static_cast<int64_t>(s.b) * s.s_local * kv_sent * s.d);
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, s.h, s.d, q, ctx.qf.f32());
  ulysses_to_frame(*ctx.ulysses, be, ctx.a2a, s.b, s.s_local, kv_sent, s.d, k, ctx.kf.f32());
  ring_attention_probs(*ctx.ring, be, ctx.ring_buffers, rs, ctx.plan, pa, ctx.qf.f32(), ctx.kf.f32(), saved.lse.f32(),
                       rows, pooled, out->stats.f32());
}

}  // namespace ringtrain
