#include "src/model/llama.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/embedding.h"
#include "kernels/cpu/workspace.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "parallel/mesh.h"
#include "parallel/zigzag.h"
#include "src/core/error.h"
#include "src/core/rng.h"

namespace ringtrain {

struct LlamaModel::Layer {
  int ln1, q, k, v, o, ln2, gate, up, down;  // parameter indices, registration order
};

// Activations one layer's backward needs (kept per layer, or rebuilt by recompute).
struct LlamaModel::Acts {
  std::vector<float> rstd1, h1, q, k, v, ao, x_mid, rstd2, h2, g, u, act;
  ContextAttentionSaved att;
};

// Temporaries of one step, reused across steps (each sized where it is used).
struct LlamaModel::Work {
  std::vector<float> tmp;                     // layer_forward: [N, d] before tp enter/leave
  std::vector<float> recompute_out;           // layer_backward under recompute: [H, d]
  std::vector<float> full, held, dnorm, dx;   // [N, d], [H, d], [H, d], [H, d]
  std::vector<float> da, dg, du;              // [N, ffn_local]
  std::vector<float> dao, dq, dk, dv;         // [N, h_local*hd], [N, kv_local*hd]
  std::vector<float> embed;                   // [N, d]
};

namespace {
float* P(ParamStore& s, int i) { return s[i].value.f32(); }
float* G(ParamStore& s, int i) { return s[i].grad.f32(); }
void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}
// v holds n zeroed elements after a size change; reuses its capacity (a growth is counted).
template <typename T>
void ensure(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) != n) ws::ensure_size(v, static_cast<size_t>(n), true);
}
// Scratch of n elements, contents unspecified.
float* scratch(std::vector<float>& v, int64_t n) {
  ws::ensure_size(v, static_cast<size_t>(n));
  return v.data();
}
}  // namespace

LlamaModel::LlamaModel(const Config& config, Mesh& mesh) : config_(config), mesh_(mesh) {
  const ModelConfig& m = config.model;
  const int tp = mesh.shape().tp;
  shape_ = ModelShape{m.vocab_size, m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.head_dim(), m.ffn_dim(), tp};
  RT_INPUT_CHECK(m.n_heads % tp == 0 && m.n_kv_heads % tp == 0 && shape_.ffn % tp == 0 &&
                     m.vocab_size % tp == 0,
                 "parallel.tp = ", tp, " must divide model.n_heads (", m.n_heads, "), n_kv_heads (",
                 m.n_kv_heads, "), the MLP width (", shape_.ffn, ") and vocab_size (", m.vocab_size, ")");
  tp_.comm = &mesh.tp();
  tp_.sequence_parallel = config.parallel.sequence_parallel && tp > 1;
  const int tp_rank = mesh.coord().tp;
  vocab_ = VocabShard{tp_rank * shape_.vocab_local(), shape_.vocab_local()};

  // Context parallelism: the zigzag positions of every cp member.
  const int cp = mesh.shape().cp;
  Zigzag zz{config.train.seq_len, cp};
  for (int r = 0; r < cp; ++r) attention_.member_positions.push_back(zz.positions(r));
  attention_.mode = config.parallel.cp_mode == "ulysses" ? CpMode::kUlysses
                    : config.parallel.cp_mode == "hybrid" ? CpMode::kHybrid
                                                          : CpMode::kRing;
  attention_.ring = &mesh.cp_ring();
  attention_.ulysses = mesh.shape().ulysses > 1 ? &mesh.cp_ulysses() : nullptr;
  attention_.causal = true;

  // Parameters in forward order (backward completes them in reverse).
  const int64_t d = shape_.d, hd = shape_.head_dim;
  auto col = [&](std::string name, int64_t out_global, int64_t in, int layer) {
    const int64_t local = out_global / tp;
    return params_.add({std::move(name), {out_global, in}, 0, tp_rank * local, local, true, layer});
  };
  auto row = [&](std::string name, int64_t out, int64_t in_global, int layer) {
    const int64_t local = in_global / tp;
    return params_.add({std::move(name), {out, in_global}, 1, tp_rank * local, local, true, layer});
  };
  auto norm = [&](std::string name, int layer) {
    const int i = params_.add({std::move(name), {d}, -1, 0, 0, false, layer});
    if (tp_.sequence_parallel) tp_partial_.push_back(i);
    return i;
  };
  p_embed_ = col("model.embed_tokens.weight", shape_.vocab, d, -1);
  for (int l = 0; l < shape_.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    Layer L{};
    L.ln1 = norm(pre + "input_layernorm.weight", l);
    L.q = col(pre + "self_attn.q_proj.weight", shape_.heads * hd, d, l);
    L.k = col(pre + "self_attn.k_proj.weight", shape_.kv_heads * hd, d, l);
    L.v = col(pre + "self_attn.v_proj.weight", shape_.kv_heads * hd, d, l);
    L.o = row(pre + "self_attn.o_proj.weight", d, shape_.heads * hd, l);
    L.ln2 = norm(pre + "post_attention_layernorm.weight", l);
    L.gate = col(pre + "mlp.gate_proj.weight", shape_.ffn, d, l);
    L.up = col(pre + "mlp.up_proj.weight", shape_.ffn, d, l);
    L.down = row(pre + "mlp.down_proj.weight", d, shape_.ffn, l);
    layers_.push_back(L);
  }
  p_final_norm_ = norm("model.norm.weight", -1);
  if (!m.tie_embeddings) p_lm_head_ = col("lm_head.weight", shape_.vocab, d, -1);
  params_.finalize(config.parallel.zero1 ? mesh.shape().dp : 1);
  x_.resize(static_cast<size_t>(shape_.layers) + 1);
  work_ = std::make_unique<Work>();
}

LlamaModel::~LlamaModel() = default;

void LlamaModel::init_weights(uint64_t seed) {
  for (Param& p : params_.params()) {
    float* w = p.value.f32();
    if (!p.info.decay) {  // RMSNorm weights start at one
      for (int64_t i = 0; i < p.numel; ++i) w[i] = 1.0f;
      continue;
    }
    const uint64_t key = hash_combine(seed, hash_string(p.info.name));
    const int64_t rows = p.local_shape[0], cols = p.local_shape[1];
    const int64_t gcols = p.info.global_shape[1];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t gr = p.info.shard_dim == 0 ? r + p.info.shard_offset : r;
        const int64_t gc = p.info.shard_dim == 1 ? c + p.info.shard_offset : c;
        w[r * cols + c] = static_cast<float>(config_.model.init_std *
                                             normal_at(key, static_cast<uint64_t>(gr * gcols + gc)));
      }
  }
}

double LlamaModel::flops_per_token(int seq_len) const {
  double matmul = 0;
  for (const Param& p : params_.params())
    if (p.info.decay && p.info.name != "model.embed_tokens.weight") matmul += static_cast<double>(shape_numel(p.info.global_shape));
  if (config_.model.tie_embeddings) matmul += static_cast<double>(shape_.vocab) * shape_.d;
  // 6 FLOPs per weight (forward 2, backward 4) plus causal attention: forward 2*s*d per
  // layer and token (QK^T and PV over half the keys on average), backward twice that.
  return 6.0 * matmul + 6.0 * shape_.layers * static_cast<double>(seq_len) * shape_.heads * shape_.head_dim;
}

void LlamaModel::setup_batch(const LocalBatch& batch) {
  b_ = batch.b;
  s_local_ = batch.s_local;
  rows_ = static_cast<int64_t>(b_) * s_local_;
  RT_INPUT_CHECK(!tp_.sequence_parallel || rows_ % tp_.size() == 0,
                 "parallel.sequence_parallel: micro_batch * seq_len / cp = ", rows_,
                 " token rows are not divisible by tp = ", tp_.size());
  held_ = tp_.held_rows(rows_);
  const auto& pos = attention_.member_positions[static_cast<size_t>(mesh_.coord().cp)];
  RT_CHECK(static_cast<int>(pos.size()) == s_local_, "batch of ", s_local_, " local tokens, layout of ", pos.size());
  ensure(row_pos_, rows_);
  for (int64_t r = 0; r < rows_; ++r) row_pos_[static_cast<size_t>(r)] = pos[static_cast<size_t>(r % s_local_)];
  const size_t want = config_.train.recompute ? 1 : static_cast<size_t>(shape_.layers);
  while (acts_.size() < want) acts_.push_back(std::make_unique<Acts>());
  for (auto& x : x_) ensure(x, held_ * shape_.d);
}

void LlamaModel::layer_forward(int l, const float* x_in, float* x_out, Acts& a) {
  const Layer& L = layers_[static_cast<size_t>(l)];
  const int64_t N = rows_, H = held_, d = shape_.d, hd = shape_.head_dim;
  const int hl = shape_.heads_local(), kvl = shape_.kv_local(), ffl = shape_.ffn_local();
  const float eps = static_cast<float>(config_.model.norm_eps);
  ensure(a.rstd1, H); ensure(a.h1, N * d); ensure(a.q, N * hl * hd); ensure(a.k, N * kvl * hd);
  ensure(a.v, N * kvl * hd); ensure(a.ao, N * hl * hd); ensure(a.x_mid, H * d); ensure(a.rstd2, H);
  ensure(a.h2, N * d); ensure(a.g, N * ffl); ensure(a.u, N * ffl); ensure(a.act, N * ffl);
  float* tmp = scratch(work_->tmp, N * d);

  // Attention half.
  rmsnorm_forward({static_cast<int>(H), static_cast<int>(d), eps}, x_in, P(params_, L.ln1), tmp, a.rstd1.data());
  tp_enter_forward(tp_, tmp, a.h1.data(), N, d);
  linear_forward(a.h1.data(), P(params_, L.q), a.q.data(), static_cast<int>(N), static_cast<int>(d), hl * static_cast<int>(hd));
  linear_forward(a.h1.data(), P(params_, L.k), a.k.data(), static_cast<int>(N), static_cast<int>(d), kvl * static_cast<int>(hd));
  linear_forward(a.h1.data(), P(params_, L.v), a.v.data(), static_cast<int>(N), static_cast<int>(d), kvl * static_cast<int>(hd));
  const double theta = config_.model.rope_theta;
  rope_forward({static_cast<int>(N), hl, static_cast<int>(hd), theta, row_pos_.data()}, a.q.data());
  rope_forward({static_cast<int>(N), kvl, static_cast<int>(hd), theta, row_pos_.data()}, a.k.data());
  context_attention_forward(attention_, {b_, s_local_, hl, kvl, static_cast<int>(hd)}, a.q.data(), a.k.data(),
                            a.v.data(), a.ao.data(), &a.att);
  linear_forward(a.ao.data(), P(params_, L.o), tmp, static_cast<int>(N), hl * static_cast<int>(hd), static_cast<int>(d));
  tp_leave_forward(tp_, tmp, a.x_mid.data(), N, d);
  add_into(a.x_mid.data(), x_in, H * d);

  // MLP half.
  rmsnorm_forward({static_cast<int>(H), static_cast<int>(d), eps}, a.x_mid.data(), P(params_, L.ln2), tmp, a.rstd2.data());
  tp_enter_forward(tp_, tmp, a.h2.data(), N, d);
  linear_forward(a.h2.data(), P(params_, L.gate), a.g.data(), static_cast<int>(N), static_cast<int>(d), ffl);
  linear_forward(a.h2.data(), P(params_, L.up), a.u.data(), static_cast<int>(N), static_cast<int>(d), ffl);
  swiglu_forward(a.g.data(), a.u.data(), a.act.data(), N * ffl);
  linear_forward(a.act.data(), P(params_, L.down), tmp, static_cast<int>(N), ffl, static_cast<int>(d));
  tp_leave_forward(tp_, tmp, x_out, N, d);
  add_into(x_out, a.x_mid.data(), H * d);
}

void LlamaModel::layer_backward(int l, const float* x_in, float* dx, Acts& a) {
  const Layer& L = layers_[static_cast<size_t>(l)];
  const int64_t N = rows_, H = held_, d = shape_.d, hd = shape_.head_dim;
  const int n = static_cast<int>(N), di = static_cast<int>(d);
  const int hl = shape_.heads_local(), kvl = shape_.kv_local(), ffl = shape_.ffn_local();
  const float eps = static_cast<float>(config_.model.norm_eps);
  if (config_.train.recompute) {  // rebuild this layer's activations from its saved input
    layer_forward(l, x_in, scratch(work_->recompute_out, H * d), a);
  }
  Work& w = *work_;
  float* full = scratch(w.full, N * d);
  float* held = scratch(w.held, H * d);
  float* dnorm = scratch(w.dnorm, H * d);

  // MLP half: dx is d(x_out); the residual passes it to x_mid unchanged.
  float* da = scratch(w.da, N * ffl);
  float* dg = scratch(w.dg, N * ffl);
  float* du = scratch(w.du, N * ffl);
  tp_leave_backward(tp_, dx, full, N, d);
  linear_backward(full, a.act.data(), P(params_, L.down), da, G(params_, L.down), n, ffl, di);
  swiglu_backward(da, a.g.data(), a.u.data(), dg, du, N * ffl);
  linear_backward(dg, a.h2.data(), P(params_, L.gate), full, G(params_, L.gate), n, di, ffl);
  linear_backward(du, a.h2.data(), P(params_, L.up), full, G(params_, L.up), n, di, ffl, true);
  tp_enter_backward(tp_, full, held, N, d);
  rmsnorm_backward({static_cast<int>(H), di, eps}, held, a.x_mid.data(), P(params_, L.ln2), a.rstd2.data(),
                   dnorm, G(params_, L.ln2));
  add_into(dx, dnorm, H * d);  // dx is now d(x_mid)

  // Attention half.
  float* dao = scratch(w.dao, N * hl * hd);
  float* dq = scratch(w.dq, N * hl * hd);
  float* dk = scratch(w.dk, N * kvl * hd);
  float* dv = scratch(w.dv, N * kvl * hd);
  tp_leave_backward(tp_, dx, full, N, d);
  linear_backward(full, a.ao.data(), P(params_, L.o), dao, G(params_, L.o), n, hl * static_cast<int>(hd), di);
  context_attention_backward(attention_, {b_, s_local_, hl, kvl, static_cast<int>(hd)}, a.q.data(), a.k.data(),
                             a.v.data(), a.ao.data(), dao, a.att, dq, dk, dv);
  const double theta = config_.model.rope_theta;
  rope_backward({n, hl, static_cast<int>(hd), theta, row_pos_.data()}, dq);
  rope_backward({n, kvl, static_cast<int>(hd), theta, row_pos_.data()}, dk);
  linear_backward(dq, a.h1.data(), P(params_, L.q), full, G(params_, L.q), n, di, hl * static_cast<int>(hd));
  linear_backward(dk, a.h1.data(), P(params_, L.k), full, G(params_, L.k), n, di, kvl * static_cast<int>(hd), true);
  linear_backward(dv, a.h1.data(), P(params_, L.v), full, G(params_, L.v), n, di, kvl * static_cast<int>(hd), true);
  tp_enter_backward(tp_, full, held, N, d);
  rmsnorm_backward({static_cast<int>(H), di, eps}, held, x_in, P(params_, L.ln1), a.rstd1.data(), dnorm,
                   G(params_, L.ln1));
  add_into(dx, dnorm, H * d);  // dx is now d(x_in)
}

void LlamaModel::forward_trunk(const LocalBatch& batch, bool keep_acts) {
  setup_batch(batch);
  const int64_t N = rows_, H = held_, d = shape_.d;
  float* e = scratch(work_->embed, N * d);
  embedding_forward({static_cast<int>(N), static_cast<int>(d), vocab_.start, vocab_.size}, batch.ids.data(),
                    P(params_, p_embed_), e);
  tp_leave_forward(tp_, e, x_[0].data(), N, d);
  for (int l = 0; l < shape_.layers; ++l) {
    Acts& a = *acts_[keep_acts && !config_.train.recompute ? static_cast<size_t>(l) : 0];
    layer_forward(l, x_[static_cast<size_t>(l)].data(), x_[static_cast<size_t>(l) + 1].data(), a);
  }
  ensure(nf_, H * d);
  ensure(nf_rstd_, H);
  ensure(hf_, N * d);
  rmsnorm_forward({static_cast<int>(H), static_cast<int>(d), static_cast<float>(config_.model.norm_eps)},
                  x_.back().data(), P(params_, p_final_norm_), nf_.data(), nf_rstd_.data());
  tp_enter_forward(tp_, nf_.data(), hf_.data(), N, d);
  head_logits();
}

void LlamaModel::head_logits() {
  ensure(logits_, rows_ * vocab_.size);
  const int head = p_lm_head_ >= 0 ? p_lm_head_ : p_embed_;
  linear_forward(hf_.data(), P(params_, head), logits_.data(), static_cast<int>(rows_), shape_.d, vocab_.size);
}

double LlamaModel::forward_backward(const LocalBatch& batch, float loss_scale, const GradReady& ready) {
  // Test hook for the fault tests: this rank fails while the others enter the ring.
  if (const char* r = std::getenv("RINGTRAIN_TEST_FAIL_RANK"); r && std::atoi(r) == mesh_.rank())
    fault("injected failure (RINGTRAIN_TEST_FAIL_RANK)");
  forward_trunk(batch, true);
  const int64_t N = rows_, H = held_, d = shape_.d;
  ensure(row_loss_, N);
  ensure(row_lse_, N);
  vocab_parallel_ce_forward(tp_, vocab_, N, logits_.data(), batch.targets.data(), row_loss_.data(), row_lse_.data());
  double loss = 0;
  for (float x : row_loss_) loss += x;
  vocab_parallel_ce_backward(tp_, vocab_, N, logits_.data(), batch.targets.data(), row_lse_.data(), loss_scale);

  // Head: output projection (vocab-parallel) and final norm.
  const int head = p_lm_head_ >= 0 ? p_lm_head_ : p_embed_;
  Work& w = *work_;
  float* full = scratch(w.full, N * d);
  float* held = scratch(w.held, H * d);
  float* dx = scratch(w.dx, H * d);
  linear_backward(logits_.data(), hf_.data(), P(params_, head), full, G(params_, head), static_cast<int>(N),
                  static_cast<int>(d), vocab_.size);
  tp_enter_backward(tp_, full, held, N, d);
  rmsnorm_backward({static_cast<int>(H), static_cast<int>(d), static_cast<float>(config_.model.norm_eps)}, held,
                   x_.back().data(), P(params_, p_final_norm_), nf_rstd_.data(), dx, G(params_, p_final_norm_));
  if (ready) ready(p_final_norm_, p_lm_head_ >= 0 ? p_lm_head_ : p_final_norm_);

  for (int l = shape_.layers - 1; l >= 0; --l) {
    Acts& a = *acts_[config_.train.recompute ? 0 : static_cast<size_t>(l)];
    layer_backward(l, x_[static_cast<size_t>(l)].data(), dx, a);
    const Layer& L = layers_[static_cast<size_t>(l)];
    if (ready) ready(L.ln1, L.down);
  }
  tp_leave_backward(tp_, dx, full, N, d);
  embedding_backward({static_cast<int>(N), static_cast<int>(d), vocab_.start, vocab_.size}, batch.ids.data(),
                     full, G(params_, p_embed_));
  if (ready) ready(p_embed_, p_embed_);
  return loss;
}

void LlamaModel::forward_eval(const LocalBatch& batch, std::vector<float>* row_loss, std::vector<int32_t>* argmax) {
  forward_trunk(batch, false);
  row_loss->assign(static_cast<size_t>(rows_), 0.0f);
  argmax->assign(static_cast<size_t>(rows_), 0);
  ensure(row_lse_, rows_);
  vocab_parallel_ce_forward(tp_, vocab_, rows_, logits_.data(), batch.targets.data(), row_loss->data(), row_lse_.data());
  vocab_parallel_argmax(tp_, vocab_, rows_, logits_.data(), argmax->data());
}

}  // namespace ringtrain
