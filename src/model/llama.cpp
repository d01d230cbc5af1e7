#include "src/model/llama.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/backend.h"
#include "parallel/mesh.h"
#include "parallel/zigzag.h"
#include "src/core/error.h"
#include "src/core/rng.h"

namespace ringtrain {

struct LlamaModel::Layer {
  int ln1, q, k, v, o, ln2, gate, up, down;  // parameter indices, registration order
};

// Activations one layer's backward needs (kept per layer, or rebuilt by recompute).
// Device buffers, each sized where it is used and reused while the sizes stay.
struct LlamaModel::Acts {
  Tensor rstd1, h1, q, k, v, ao, x_mid, rstd2, h2, g, u, act;
  ContextAttentionSaved att;
};

// Temporaries of one step, reused across steps (each sized where it is used).
struct LlamaModel::Work {
  Tensor tmp;                    // layer_forward: [N, d] before tp enter/leave
  Tensor recompute_out;          // layer_backward under recompute: [H, d]
  Tensor full, held, dnorm, dx;  // [N, d], [H, d], [H, d], [H, d]
  Tensor da, dg, du;             // [N, ffn_local]
  Tensor dao, dq, dk, dv;        // [N, h_local*hd], [N, kv_local*hd]
  Tensor embed;                  // [N, d]
};

RopeScaling rope_scaling_of(const ModelConfig& m) {
  RopeScaling r;
  switch (m.rope_scaling) {
    case RopeScalingType::kNone: r.type = RopeType::kNone; break;
    case RopeScalingType::kLinear: r.type = RopeType::kLinear; break;
    case RopeScalingType::kLlama3: r.type = RopeType::kLlama3; break;
    case RopeScalingType::kYarn: r.type = RopeType::kYarn; break;
  }
  if (r.type == RopeType::kNone) return r;  // the parameters of an unused scaling do not matter
  r.factor = m.rope_factor;
  r.original_max_positions = m.rope_original_max_position_embeddings;
  r.low_freq_factor = m.rope_low_freq_factor;
  r.high_freq_factor = m.rope_high_freq_factor;
  r.beta_fast = m.rope_beta_fast;
  r.beta_slow = m.rope_beta_slow;
  r.attention_factor = m.rope_attention_factor;
  r.truncate = m.rope_truncate;
  return r;
}

namespace {
float* P(ParamStore& s, int i) { return s[i].value.f32(); }
float* G(ParamStore& s, int i) { return s[i].grad.f32(); }
// A GEMM's weight: fp32, or the bf16 copy ZeRO-3 gathered in bf16, which the backend knows by
// its address (Backend::bf16_weights_at) and multiplies as bf16. Other kernels read P.
const float* W(ParamStore& s, int i) { return static_cast<const float*>(s[i].value.raw()); }

// The sizes and constants of one layer's forward and backward for the current micro-batch.
// Row counts come twice: as int64_t for buffer sizes and as int for the kernel arguments.
struct LayerDims {
  int64_t rows;       // token rows inside the linear layers (the whole local sequence)
  int64_t held;       // rows held outside them (a 1/tp share under sequence parallelism)
  int64_t d_model;
  int rows_i, held_i, d_model_i;
  int head_dim;
  int heads, kv_heads;  // this tp rank's
  int ffn;              // this tp rank's MLP columns
  int q_width, kv_width;  // heads * head_dim, kv_heads * head_dim
  float eps;
  double theta;
  const int32_t* positions;  // device, [rows]: in-document RoPE positions
};
LayerDims layer_dims(const ModelShape& s, const ModelConfig& m, int64_t rows, int64_t held, const Tensor& pos) {
  const int hd = s.head_dim;
  return LayerDims{rows,
                   held,
                   s.d,
                   static_cast<int>(rows),
                   static_cast<int>(held),
                   static_cast<int>(s.d),
                   hd,
                   s.heads_local(),
                   s.kv_local(),
                   s.ffn_local(),
                   s.heads_local() * hd,
                   s.kv_local() * hd,
                   static_cast<float>(m.norm_eps),
                   m.rope_theta,
                   pos.data<int32_t>()};
}
}  // namespace

float* LlamaModel::buf(Tensor& t, int64_t n) {
  ensure_buffer(be_, t, n);
  return t.f32();
}

LlamaModel::LlamaModel(const Config& config, Mesh& mesh, Backend& backend, const TensorGroups& groups,
                       bool shapes_only)
    : model_(config.model),
      recompute_(config.train.recompute),
      keep_for_backward_(config.parallel.zero3_keep_for_backward),
      mesh_(mesh),
      be_(backend) {
  const ModelConfig& m = config.model;
  rope_scaling_ = rope_scaling_of(m);
  const int tp = mesh.shape().tp;
  shape_ = ModelShape{m.vocab_size, m.d_model, m.n_layers, m.n_heads, m.n_kv_heads, m.head_dim(), m.ffn_dim(), tp};
  // The config checked these (src/config); here they guard against a caller that did not.
  RT_CHECK(m.n_heads % tp == 0 && m.n_kv_heads % tp == 0 && shape_.ffn % tp == 0 && m.vocab_size % tp == 0,
           "parallel.tp = ", tp, " must divide model.n_heads (", m.n_heads, "), n_kv_heads (", m.n_kv_heads,
           "), the MLP width (", shape_.ffn, ") and vocab_size (", m.vocab_size, ")");
  tp_.comm = groups.tp;
  tp_.backend = &be_;
  tp_.sequence_parallel = config.parallel.sequence_parallel && tp > 1;
  const int tp_rank = mesh.coord().tp;
  vocab_ = VocabShard{tp_rank * shape_.vocab_local(), shape_.vocab_local()};

  // Context parallelism; the sequence is laid out over the cp members by the first batch.
  attention_.ring = groups.ring;
  attention_.ulysses = mesh.shape().ulysses > 1 ? groups.ulysses : nullptr;
  attention_.causal = true;
  attention_.window = m.sliding_window;
  // Test hook for the fault tests: this rank fails while the others enter the ring.
  if (const char* r = std::getenv("RINGTRAIN_TEST_FAIL_RANK")) test_fail_ = std::atoi(r) == mesh.rank();

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
  const int zero = config.parallel.zero_level();
  ParamLayout layout;
  if (zero >= 1) {
    layout.shard_over = mesh.shape().dp * mesh.shape().cp;
    layout.shard_rank = mesh.coord().dp * mesh.shape().cp + mesh.coord().cp;  // its rank in dp x cp
  }
  layout.full_grads = zero < 2;
  layout.full_values = zero < 3;
  params_.finalize(layout, &be_, shapes_only);
  x_.resize(static_cast<size_t>(shape_.layers) + 1);
  work_ = std::make_unique<Work>();
}

LlamaModel::~LlamaModel() = default;

void LlamaModel::init_weights(uint64_t seed) {
  for (int i = 0; i < static_cast<int>(params_.params().size()); ++i) {
    const Param& p = params_[i];
    const HeldSpan h = params_.held(i);  // ZeRO-3: this rank's piece only
    float* w = params_.host_values() + h.at - h.lo;  // element e of the parameter at w[e]
    if (!p.info.decay) {  // RMSNorm weights start at one
      for (int64_t e = h.lo; e < h.hi; ++e) w[e] = 1.0f;
      continue;
    }
    const uint64_t key = hash_combine(seed, hash_string(p.info.name));
    const int64_t cols = p.local_shape[1];
    const int64_t gcols = p.info.global_shape[1];
    for (int64_t e = h.lo; e < h.hi; ++e) {
      const int64_t r = e / cols, c = e % cols;
      const int64_t gr = p.info.shard_dim == 0 ? r + p.info.shard_offset : r;
      const int64_t gc = p.info.shard_dim == 1 ? c + p.info.shard_offset : c;
      w[e] = static_cast<float>(model_.init_std * normal_at(key, static_cast<uint64_t>(gr * gcols + gc)));
    }
  }
  params_.push_values();
}

int LlamaModel::layer_unit(int l) const { return params_.unit_of(layers_[static_cast<size_t>(l)].ln1); }

double LlamaModel::flops_per_token(int seq_len) const {
  double matmul = 0;
  for (const Param& p : params_.params())
    if (p.info.decay && p.info.name != "model.embed_tokens.weight") matmul += static_cast<double>(shape_numel(p.info.global_shape));
  if (model_.tie_embeddings) matmul += static_cast<double>(shape_.vocab) * shape_.d;
  // 6 FLOPs per weight (forward 2, backward 4) plus causal attention: forward 2*s*d per
  // layer and token (QK^T and PV over half the keys on average), backward twice that.
  return 6.0 * matmul + 6.0 * shape_.layers * static_cast<double>(seq_len) * shape_.heads * shape_.head_dim;
}

// The zigzag positions of every cp member for sequences of seq_len tokens.
void LlamaModel::layout_sequence(int seq_len) {
  const int cp = mesh_.shape().cp;
  RT_CHECK(seq_len > 0 && seq_len % (2 * cp) == 0, "a sequence of ", seq_len, " tokens over cp = ", cp);
  const Zigzag zz{seq_len, cp};
  attention_.member_positions.clear();
  for (int r = 0; r < cp; ++r) attention_.member_positions.push_back(zz.positions(r));
  context_attention_prepare(attention_, be_);
  seq_len_ = seq_len;
}

void LlamaModel::setup_batch(const LocalBatch& batch) {
  b_ = batch.b;
  s_local_ = batch.s_local;
  rows_ = static_cast<int64_t>(b_) * s_local_;
  RT_INPUT_CHECK(!tp_.sequence_parallel || rows_ % tp_.size() == 0,
                 "parallel.sequence_parallel: micro_batch * seq_len / cp = ", rows_,
                 " token rows are not divisible by tp = ", tp_.size());
  held_ = tp_.held_rows(rows_);
  const int seq_len = batch.seq_len > 0 ? batch.seq_len : s_local_ * mesh_.shape().cp;
  if (!batch.member_positions.empty()) {  // this micro-batch's own split
    RT_CHECK(static_cast<int>(batch.member_positions.size()) == mesh_.shape().cp, "batch split over ",
             batch.member_positions.size(), " ranks, cp = ", mesh_.shape().cp);
    attention_.member_positions = batch.member_positions;
    context_attention_prepare(attention_, be_);
    seq_len_ = 0;  // the next batch without a split lays the zigzag out again
  } else if (seq_len != seq_len_) {
    layout_sequence(seq_len);
  }
  const auto& pos = attention_.member_positions[static_cast<size_t>(mesh_.coord().cp)];
  RT_CHECK(static_cast<int>(pos.size()) == s_local_, "batch of ", s_local_, " local tokens, layout of ", pos.size());
  RT_CHECK(static_cast<int64_t>(batch.ids.size()) == rows_ && static_cast<int64_t>(batch.targets.size()) == rows_,
           "batch of ", batch.ids.size(), " ids and ", batch.targets.size(), " targets for ", rows_, " rows");
  RT_CHECK(batch.rope_pos.empty() || static_cast<int64_t>(batch.rope_pos.size()) == rows_, "batch of ",
           batch.rope_pos.size(), " RoPE positions for ", rows_, " rows");
  RT_CHECK(batch.docs.empty() || static_cast<int64_t>(batch.docs.size()) == static_cast<int64_t>(b_) * seq_len,
           "batch of ", batch.docs.size(), " document ids for ", b_, " samples of ", seq_len, " tokens");
  context_attention_set_documents(attention_, b_, batch.docs.empty() ? nullptr : batch.docs.data());
  if (static_cast<int64_t>(row_pos_.size()) != rows_) row_pos_.resize(static_cast<size_t>(rows_));
  for (int64_t r = 0; r < rows_; ++r)
    row_pos_[static_cast<size_t>(r)] =
        batch.rope_pos.empty() ? pos[static_cast<size_t>(r % s_local_)] : batch.rope_pos[static_cast<size_t>(r)];
  ensure_buffer(be_, row_pos_dev_, rows_, DType::kI32);
  be_.upload(row_pos_dev_.raw(), row_pos_.data(), row_pos_.size() * sizeof(int32_t));
  ensure_buffer(be_, ids_, rows_, DType::kI32);
  ensure_buffer(be_, targets_, rows_, DType::kI32);
  be_.upload(ids_.raw(), batch.ids.data(), batch.ids.size() * sizeof(int32_t));
  be_.upload(targets_.raw(), batch.targets.data(), batch.targets.size() * sizeof(int32_t));
  const size_t want = recompute_ ? 1 : static_cast<size_t>(shape_.layers);
  while (acts_.size() < want) acts_.push_back(std::make_unique<Acts>());
  for (auto& x : x_) ensure_buffer(be_, x, held_ * shape_.d);
}

void LlamaModel::layer_forward(int l, const float* x_in, float* x_out, Acts& a) {
  const Layer& L = layers_[static_cast<size_t>(l)];
  const LayerDims D = layer_dims(shape_, model_, rows_, held_, row_pos_dev_);
  float* tmp = buf(work_->tmp, D.rows * D.d_model);
  float* rstd1 = buf(a.rstd1, D.held);
  float* h1 = buf(a.h1, D.rows * D.d_model);
  float* q = buf(a.q, D.rows * D.q_width);
  float* k = buf(a.k, D.rows * D.kv_width);
  float* v = buf(a.v, D.rows * D.kv_width);
  float* ao = buf(a.ao, D.rows * D.q_width);
  float* x_mid = buf(a.x_mid, D.held * D.d_model);
  float* rstd2 = buf(a.rstd2, D.held);
  float* h2 = buf(a.h2, D.rows * D.d_model);
  float* g = buf(a.g, D.rows * D.ffn);
  float* u = buf(a.u, D.rows * D.ffn);
  float* act = buf(a.act, D.rows * D.ffn);

  // Attention half.
  be_.rmsnorm_forward({D.held_i, D.d_model_i, D.eps}, x_in, P(params_, L.ln1), tmp, rstd1);
  tp_enter_forward(tp_, tmp, h1, D.rows, D.d_model);
  be_.linear_forward(h1, W(params_, L.q), q, D.rows_i, D.d_model_i, D.q_width);
  be_.linear_forward(h1, W(params_, L.k), k, D.rows_i, D.d_model_i, D.kv_width);
  be_.linear_forward(h1, W(params_, L.v), v, D.rows_i, D.d_model_i, D.kv_width);
  be_.rope_forward({D.rows_i, D.heads, D.head_dim, D.theta, D.positions, rope_scaling_}, q);
  be_.rope_forward({D.rows_i, D.kv_heads, D.head_dim, D.theta, D.positions, rope_scaling_}, k);
  context_attention_forward(attention_, {b_, s_local_, D.heads, D.kv_heads, D.head_dim}, q, k, v, ao, &a.att);
  if (attention_hook_) attention_hook_(l, attention_, {b_, s_local_, D.heads, D.kv_heads, D.head_dim}, q, k, a.att);
  be_.linear_forward(ao, W(params_, L.o), tmp, D.rows_i, D.q_width, D.d_model_i);
  tp_leave_forward(tp_, tmp, x_mid, D.rows, D.d_model);
  be_.add(x_mid, x_in, D.held * D.d_model);

  // MLP half.
  be_.rmsnorm_forward({D.held_i, D.d_model_i, D.eps}, x_mid, P(params_, L.ln2), tmp, rstd2);
  tp_enter_forward(tp_, tmp, h2, D.rows, D.d_model);
  be_.linear_forward(h2, W(params_, L.gate), g, D.rows_i, D.d_model_i, D.ffn);
  be_.linear_forward(h2, W(params_, L.up), u, D.rows_i, D.d_model_i, D.ffn);
  be_.swiglu_forward(g, u, act, D.rows * D.ffn);
  be_.linear_forward(act, W(params_, L.down), tmp, D.rows_i, D.ffn, D.d_model_i);
  tp_leave_forward(tp_, tmp, x_out, D.rows, D.d_model);
  be_.add(x_out, x_mid, D.held * D.d_model);
}

void LlamaModel::layer_backward(int l, const float* x_in, float* dx, Acts& a) {
  const Layer& L = layers_[static_cast<size_t>(l)];
  const LayerDims D = layer_dims(shape_, model_, rows_, held_, row_pos_dev_);
  if (recompute_) {  // rebuild this layer's activations from its saved input
    layer_forward(l, x_in, buf(work_->recompute_out, D.held * D.d_model), a);
  }
  Work& w = *work_;
  float* full = buf(w.full, D.rows * D.d_model);
  float* held = buf(w.held, D.held * D.d_model);
  float* dnorm = buf(w.dnorm, D.held * D.d_model);

  // MLP half: dx is d(x_out); the residual passes it to x_mid unchanged.
  float* da = buf(w.da, D.rows * D.ffn);
  float* dg = buf(w.dg, D.rows * D.ffn);
  float* du = buf(w.du, D.rows * D.ffn);
  tp_leave_backward(tp_, dx, full, D.rows, D.d_model);
  be_.linear_backward(full, a.act.f32(), W(params_, L.down), da, G(params_, L.down), D.rows_i, D.ffn, D.d_model_i, false);
  be_.swiglu_backward(da, a.g.f32(), a.u.f32(), dg, du, D.rows * D.ffn);
  be_.linear_backward(dg, a.h2.f32(), W(params_, L.gate), full, G(params_, L.gate), D.rows_i, D.d_model_i, D.ffn, false);
  be_.linear_backward(du, a.h2.f32(), W(params_, L.up), full, G(params_, L.up), D.rows_i, D.d_model_i, D.ffn, true);
  tp_enter_backward(tp_, full, held, D.rows, D.d_model);
  be_.rmsnorm_backward({D.held_i, D.d_model_i, D.eps}, held, a.x_mid.f32(), P(params_, L.ln2), a.rstd2.f32(), dnorm,
                       G(params_, L.ln2));
  be_.add(dx, dnorm, D.held * D.d_model);  // dx is now d(x_mid)

  // Attention half.
  float* dao = buf(w.dao, D.rows * D.q_width);
  float* dq = buf(w.dq, D.rows * D.q_width);
  float* dk = buf(w.dk, D.rows * D.kv_width);
  float* dv = buf(w.dv, D.rows * D.kv_width);
  tp_leave_backward(tp_, dx, full, D.rows, D.d_model);
  be_.linear_backward(full, a.ao.f32(), W(params_, L.o), dao, G(params_, L.o), D.rows_i, D.q_width, D.d_model_i, false);
  context_attention_backward(attention_, {b_, s_local_, D.heads, D.kv_heads, D.head_dim}, a.q.f32(), a.k.f32(),
                             a.v.f32(), a.ao.f32(), dao, a.att, dq, dk, dv);
  be_.rope_backward({D.rows_i, D.heads, D.head_dim, D.theta, D.positions, rope_scaling_}, dq);
  be_.rope_backward({D.rows_i, D.kv_heads, D.head_dim, D.theta, D.positions, rope_scaling_}, dk);
  be_.linear_backward(dq, a.h1.f32(), W(params_, L.q), full, G(params_, L.q), D.rows_i, D.d_model_i, D.q_width, false);
  be_.linear_backward(dk, a.h1.f32(), W(params_, L.k), full, G(params_, L.k), D.rows_i, D.d_model_i, D.kv_width, true);
  be_.linear_backward(dv, a.h1.f32(), W(params_, L.v), full, G(params_, L.v), D.rows_i, D.d_model_i, D.kv_width, true);
  tp_enter_backward(tp_, full, held, D.rows, D.d_model);
  be_.rmsnorm_backward({D.held_i, D.d_model_i, D.eps}, held, x_in, P(params_, L.ln1), a.rstd1.f32(), dnorm,
                       G(params_, L.ln1));
  be_.add(dx, dnorm, D.held * D.d_model);  // dx is now d(x_in)
}

void LlamaModel::forward_trunk(const LocalBatch& batch, bool keep_acts) {
  setup_batch(batch);
  const int64_t N = rows_, H = held_, d = shape_.d;
  const int embed = params_.unit_of(p_embed_), head = params_.unit_of(p_final_norm_), L = shape_.layers;
  const bool tied = p_lm_head_ < 0;
  const bool keep_layers = keep_acts && keep_for_backward_;
  hook(hooks_.acquire, embed);
  hook(hooks_.prefetch, L > 0 ? layer_unit(0) : head);
  float* e = buf(work_->embed, N * d);
  be_.embedding_forward({static_cast<int>(N), static_cast<int>(d), vocab_.start, vocab_.size}, ids_.data<int32_t>(),
                        P(params_, p_embed_), e);
  if (!tied) hook(hooks_.release, embed);
  tp_leave_forward(tp_, e, x_[0].f32(), N, d);
  for (int l = 0; l < L; ++l) {
    Acts& a = *acts_[keep_acts && !recompute_ ? static_cast<size_t>(l) : 0];
    hook(hooks_.acquire, layer_unit(l));
    hook(hooks_.prefetch, l + 1 < L ? layer_unit(l + 1) : head);
    layer_forward(l, x_[static_cast<size_t>(l)].f32(), x_[static_cast<size_t>(l) + 1].f32(), a);
    if (!keep_layers) hook(hooks_.release, layer_unit(l));
  }
  hook(hooks_.acquire, head);
  be_.rmsnorm_forward({static_cast<int>(H), static_cast<int>(d), static_cast<float>(model_.norm_eps)},
                      x_.back().f32(), P(params_, p_final_norm_), buf(nf_, H * d), buf(nf_rstd_, H));
  tp_enter_forward(tp_, nf_.f32(), buf(hf_, N * d), N, d);
  head_logits();
}

void LlamaModel::head_logits() {
  const int head = p_lm_head_ >= 0 ? p_lm_head_ : p_embed_;
  be_.linear_forward(hf_.f32(), W(params_, head), buf(logits_, rows_ * vocab_.size), static_cast<int>(rows_),
                     shape_.d, vocab_.size);
}

double LlamaModel::forward_backward(const LocalBatch& batch, float loss_scale, const GradReady& ready) {
  if (test_fail_) fault("injected failure (RINGTRAIN_TEST_FAIL_RANK)");
  forward_trunk(batch, true);
  const int64_t N = rows_, H = held_, d = shape_.d;
  float* row_loss = buf(row_loss_, N);
  float* row_lse = buf(row_lse_, N);
  const int32_t* targets = targets_.data<int32_t>();
  vocab_parallel_ce_forward(tp_, vocab_buffers_, vocab_, N, logits_.f32(), targets, row_loss, row_lse);
  vocab_parallel_ce_backward(tp_, vocab_, N, logits_.f32(), targets, row_lse, loss_scale);

  // Head: output projection (vocab-parallel) and final norm. The embedding's gradients start
  // here when the head shares its matrix.
  const int embed_unit = params_.unit_of(p_embed_), head_unit = params_.unit_of(p_final_norm_), L = shape_.layers;
  const bool keep_layers = keep_for_backward_;
  if (p_lm_head_ < 0) hook(hooks_.grads_begin, embed_unit);  // tied: the head writes it first
  hook(hooks_.grads_begin, head_unit);
  if (L > 0 && !keep_layers) hook(hooks_.prefetch, layer_unit(L - 1));
  const int head = p_lm_head_ >= 0 ? p_lm_head_ : p_embed_;
  Work& w = *work_;
  float* full = buf(w.full, N * d);
  float* held = buf(w.held, H * d);
  float* dx = buf(w.dx, H * d);
  be_.linear_backward(logits_.f32(), hf_.f32(), W(params_, head), full, G(params_, head), static_cast<int>(N),
                      static_cast<int>(d), vocab_.size, false);
  tp_enter_backward(tp_, full, held, N, d);
  be_.rmsnorm_backward({static_cast<int>(H), static_cast<int>(d), static_cast<float>(model_.norm_eps)}, held,
                       x_.back().f32(), P(params_, p_final_norm_), nf_rstd_.f32(), dx, G(params_, p_final_norm_));
  if (ready) ready(p_final_norm_, p_lm_head_ >= 0 ? p_lm_head_ : p_final_norm_);
  hook(hooks_.release, head_unit);
  if (p_lm_head_ < 0) hook(hooks_.release, embed_unit);

  for (int l = L - 1; l >= 0; --l) {
    Acts& a = *acts_[recompute_ ? 0 : static_cast<size_t>(l)];
    if (!keep_layers) hook(hooks_.acquire, layer_unit(l));
    if (l > 0 && !keep_layers) hook(hooks_.prefetch, layer_unit(l - 1));
    hook(hooks_.grads_begin, layer_unit(l));
    layer_backward(l, x_[static_cast<size_t>(l)].f32(), dx, a);
    hook(hooks_.release, layer_unit(l));
    const Layer& ly = layers_[static_cast<size_t>(l)];
    if (ready) ready(ly.ln1, ly.down);
  }
  tp_leave_backward(tp_, dx, full, N, d);
  if (p_lm_head_ >= 0) hook(hooks_.grads_begin, embed_unit);
  be_.embedding_backward({static_cast<int>(N), static_cast<int>(d), vocab_.start, vocab_.size}, ids_.data<int32_t>(),
                         full, G(params_, p_embed_));
  if (ready) ready(p_embed_, p_embed_);

  // The loss is read on the host here, after the whole backward was issued.
  if (static_cast<int64_t>(row_loss_host_.size()) != N) row_loss_host_.resize(static_cast<size_t>(N));
  be_.download(row_loss_host_.data(), row_loss, row_loss_host_.size() * sizeof(float));
  double loss = 0;
  for (float x : row_loss_host_) loss += x;
  return loss;
}

void LlamaModel::forward_eval(const LocalBatch& batch, std::vector<float>* row_loss, std::vector<int32_t>* argmax) {
  forward_trunk(batch, false);
  hook(hooks_.release, params_.unit_of(p_final_norm_));
  if (p_lm_head_ < 0) hook(hooks_.release, params_.unit_of(p_embed_));
  row_loss->assign(static_cast<size_t>(rows_), 0.0f);
  argmax->assign(static_cast<size_t>(rows_), 0);
  vocab_parallel_ce_forward(tp_, vocab_buffers_, vocab_, rows_, logits_.f32(), targets_.data<int32_t>(),
                            buf(row_loss_, rows_), buf(row_lse_, rows_));
  be_.download(row_loss->data(), row_loss_.f32(), row_loss->size() * sizeof(float));
  vocab_parallel_argmax(tp_, vocab_buffers_, vocab_, rows_, logits_.f32(), argmax->data());
}

}  // namespace ringtrain
