#include "src/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "parallel/mesh.h"
#include "src/core/error.h"
#include "src/core/process.h"

namespace ringtrain {
namespace {

// The part of parameter p inside range r: flat [b, e) and where b sits in the shard buffers.
struct Overlap {
  int64_t b, e, at;
};
Overlap overlap(const Param& p, const ShardRange& r) {
  const int64_t b = std::max(r.begin, p.offset), e = std::min(r.begin + r.size, p.offset + p.numel);
  return {b, std::max(b, e), r.shard_offset + (b - r.begin)};
}

}  // namespace

Optimizer::Optimizer(const Config& config, Mesh& mesh, Backend& backend, const TensorGroups& groups,
                     ParamStore& params, std::vector<int> tp_partial)
    : config_(config),
      mesh_(mesh),
      be_(backend),
      tp_(groups.tp),
      dp_cp_(groups.dp_cp),
      params_(params),
      tp_partial_(std::move(tp_partial)) {
  zero_ = config.parallel.zero_level();
  const int64_t n = params.shard_over();
  RT_CHECK(n == (zero_ >= 1 ? dp_cp_->size() : 1), "flat buffer padded for ", n, " ranks, ZeRO group of ",
           dp_cp_->size());
  if (config.parallel.zero != ZeroLevel::k0 && zero_ == 0 && mesh.rank() == 0)
    warn("parallel.zero = " + std::to_string(static_cast<int>(config.parallel.zero)) +
         " shards nothing with dp x cp = 1 (it shards over the ranks that hold the same parameters); "
         "running as zero 0");
  shard_ = params.shard_ranges(zero_ >= 1 ? dp_cp_->rank() : 0);
  shard_size_ = params.size() / n;
  m_ = be_.alloc(shard_size_);
  v_ = be_.alloc(shard_size_);
  be_.fill(m_.f32(), 0.0f, shard_size_);
  be_.fill(v_.f32(), 0.0f, shard_size_);
  if (zero_ >= 1) {
    grad_shard_ = be_.alloc(shard_size_);
    be_.fill(grad_shard_.f32(), 0.0f, shard_size_);
  }
  const auto& units = params.units();
  // A tied head writes the embedding's gradients first and reads its weights last: the
  // embedding then has buffers of its own; untied, it takes turns with the other units (but
  // for its weights when the others are gathered in bf16).
  embed_own_ = config.model.tie_embeddings;
  gather_bf16_ = zero_ >= 3 && !be_.on_host() && be_.precision() == Precision::kBF16;
  const bool embed_values_own = embed_own_ || gather_bf16_;
  for (size_t u = embed_own_ ? 1 : 0; u < units.size(); ++u) widest_ = std::max(widest_, units[u].size);
  for (size_t u = embed_values_own ? 1 : 0; u < units.size(); ++u)
    widest_values_ = std::max(widest_values_, units[u].size);
  if (zero_ >= 2) {
    if (embed_own_) {
      embed_slot_.grads = be_.alloc(units[0].size);
      embed_slot_.piece = be_.alloc(units[0].size / n);
    }
    for (GradSlot& s : slots_) {
      s.grads = be_.alloc(widest_);
      s.piece = be_.alloc(widest_ / n);
    }
  }
  if (zero_ >= 3 && embed_values_own) embed_values_.values = be_.alloc(units[0].size);
  if (gather_bf16_) {
    int64_t at = 0;
    norm_at_.assign(params.params().size(), -1);
    for (int i = 0; i < static_cast<int>(params.params().size()); ++i)
      if (bf16_unit(params.unit_of(i)) && params[i].local_shape.size() == 1) {
        norm_at_[static_cast<size_t>(i)] = at;
        at += params[i].numel;
      }
    norms_ = be_.alloc(at);
  }
  if (be_.on_host()) {
    host_m_ = m_;
    host_v_ = v_;
  } else {
    host_m_ = Tensor::zeros({shard_size_});
    host_v_ = Tensor::zeros({shard_size_});
  }
}

Optimizer::~Optimizer() {
  if (gather_bf16_)
    for (ValueSlot& s : values_) be_.bf16_weights_at(s.values.raw(), 0);
}

void Optimizer::pull_state() {
  if (be_.on_host()) return;
  be_.download(host_m_.raw(), m_.raw(), m_.nbytes());
  be_.download(host_v_.raw(), v_.raw(), v_.nbytes());
}

void Optimizer::push_state() {
  if (be_.on_host()) return;
  be_.upload(m_.raw(), host_m_.raw(), m_.nbytes());
  be_.upload(v_.raw(), host_v_.raw(), v_.nbytes());
}

void Optimizer::grads_begin(int unit) {
  if (zero_ < 2) return;
  const bool own = unit == 0 && embed_own_;
  GradSlot& s = own ? embed_slot_ : slots_[next_slot_];
  if (!own) next_slot_ ^= 1;
  settle(s);  // its previous unit's reduce-scatter still reads it
  s.unit = unit;
  be_.fill(s.grads.f32(), 0.0f, params_.units()[static_cast<size_t>(unit)].size);
  params_.bind_grads(unit, s.grads);
}

Optimizer::ValueSlot* Optimizer::value_slot(int unit) {
  if (embed_values_.unit == unit) return &embed_values_;
  for (ValueSlot& s : values_)
    if (s.unit == unit) return &s;
  return nullptr;
}

Optimizer::ValueSlot& Optimizer::gather_into(int unit, bool async) {
  ValueSlot* slot = unit == 0 && embed_values_.values.defined() ? &embed_values_ : nullptr;
  for (size_t i = 0; !slot && i < values_.size(); ++i)
    if (values_[i].unit < 0) slot = &values_[i];
  if (!slot) {
    ValueSlot& s = values_.emplace_back();
    if (gather_bf16_) {
      s.values = be_.alloc(widest_values_, DType::kBF16);
      s.staging = be_.alloc(widest_values_ / params_.shard_over(), DType::kBF16);
      be_.bf16_weights_at(s.values.raw(), s.values.nbytes());
    } else {
      s.values = be_.alloc(widest_values_);
    }
    slot = &s;
  }
  RT_CHECK(slot->unit < 0, "unit ", unit, ": the embedding's weight buffer still holds unit ", slot->unit);
  const ShardRange& r = shard_[static_cast<size_t>(unit)];
  const void* mine = params_.values() + r.shard_offset;
  DType type = DType::kF32;
  if (bf16_unit(unit)) {
    if (norms_stale_ || norms_version_ != params_.values_version()) refresh_norms();
    be_.cast_to_bf16(params_.values() + r.shard_offset, slot->staging.raw(), r.size);
    mine = slot->staging.raw();
    type = DType::kBF16;
  }
  slot->unit = unit;
  if (async)
    slot->pending = dp_cp_->all_gather_async(mine, slot->values.raw(), static_cast<size_t>(r.size), type);
  else
    dp_cp_->all_gather(mine, slot->values.raw(), static_cast<size_t>(r.size), type);
  return *slot;
}

void Optimizer::refresh_norms() {
  be_.fill(norms_.f32(), 0.0f, norms_.numel());
  for (int i = 0; i < static_cast<int>(norm_at_.size()); ++i) {
    const int64_t at = norm_at_[static_cast<size_t>(i)];
    const HeldSpan h = params_.held(i);
    if (at >= 0 && h.hi > h.lo)
      be_.copy(norms_.f32() + at + h.lo, params_.values() + h.at, static_cast<size_t>(h.hi - h.lo) * sizeof(float));
  }
  dp_cp_->all_reduce(norms_.raw(), static_cast<size_t>(norms_.numel()), DType::kF32, ReduceOp::kSum);
  norms_stale_ = false;
  norms_version_ = params_.values_version();
}

void Optimizer::acquire_values(int unit) {
  if (zero_ < 3) return;
  ValueSlot* s = value_slot(unit);
  if (!s) s = &gather_into(unit, false);
  if (s->pending) {
    s->pending->wait();
    s->pending.reset();
  }
  params_.bind_values(unit, s->values);
  if (bf16_unit(unit)) {
    const ParamUnit& u = params_.units()[static_cast<size_t>(unit)];
    for (int i = u.first; i <= u.last; ++i)
      if (norm_at_[static_cast<size_t>(i)] >= 0)
        params_.bind_value(i, norms_.slice0(norm_at_[static_cast<size_t>(i)], params_[i].numel));
  } else {
    be_.weights_changed();  // the buffer held other weights (their bf16 copies on a GPU)
  }
}

void Optimizer::prefetch_values(int unit) {
  if (zero_ < 3 || value_slot(unit)) return;
  gather_into(unit, true);
}

void Optimizer::release_values(int unit) {
  if (zero_ < 3) return;
  ValueSlot* s = value_slot(unit);
  if (!s) return;
  if (s->pending) s->pending->wait();  // named next but never read
  s->pending.reset();
  s->unit = -1;
}

void Optimizer::settle(GradSlot& s) {
  if (!s.pending) return;
  s.pending->wait();
  s.pending.reset();
  const ShardRange& r = shard_[static_cast<size_t>(s.unit)];
  be_.add(grad_shard_.f32() + r.shard_offset, s.piece.f32(), r.size);
}

void Optimizer::grads_ready(int first, int last, bool sync) {
  const int u = params_.unit_of(first);
  const ParamUnit& unit = params_.units()[static_cast<size_t>(u)];
  RT_CHECK(unit.first == first && unit.last == last, "gradients of parameters ", first, "..", last,
           " reported complete, not one unit");
  // Only ZeRO-2 reduces at every micro-step (its unit buffers are reused); the others sum the
  // micro-steps locally first.
  if (!sync && zero_ < 2) return;
  for (int i : tp_partial_)  // norm weights under sequence parallelism: partial over tp
    if (i >= first && i <= last)
      tp_->all_reduce(params_[i].grad.raw(), static_cast<size_t>(params_[i].numel), DType::kF32, ReduceOp::kSum);
  const size_t piece = static_cast<size_t>(shard_[static_cast<size_t>(u)].size);
  if (zero_ == 0) {
    if (dp_cp_->size() > 1)
      pending_.push_back(dp_cp_->all_reduce_async(params_.grads() + unit.begin, static_cast<size_t>(unit.size),
                                                  DType::kF32, ReduceOp::kSum));
  } else if (zero_ == 1) {
    pending_.push_back(dp_cp_->reduce_scatter_async(params_.grads() + unit.begin,
                                                    grad_shard_.f32() + shard_[static_cast<size_t>(u)].shard_offset,
                                                    piece, DType::kF32, ReduceOp::kSum));
  } else {
    GradSlot& s = u == 0 && embed_own_ ? embed_slot_ : (slots_[0].unit == u ? slots_[0] : slots_[1]);
    RT_CHECK(s.unit == u && !s.pending, "unit ", u, " reported complete without its gradient buffer");
    s.pending = dp_cp_->reduce_scatter_async(s.grads.f32(), s.piece.f32(), piece, DType::kF32, ReduceOp::kSum);
  }
}

float* Optimizer::grad_shard() { return zero_ >= 1 ? grad_shard_.f32() : params_.grads(); }

double Optimizer::finish_gradients() {
  for (Pending& p : pending_) p->wait();
  pending_.clear();
  settle(embed_slot_);
  for (GradSlot& s : slots_) settle(s);
  // Global norm: tp-sharded parameters are summed over tp, replicated ones counted once;
  // under ZeRO each dp x cp rank holds disjoint pieces, summed over dp x cp. The two sums are
  // host scalars (read for clipping and the non-finite check) and travel over the mesh's host
  // communicators.
  // One sum per parameter on the device, downloaded together, added here in parameter order.
  const auto& ps = params_.params();
  const int64_t np = static_cast<int64_t>(ps.size());
  ensure_buffer(be_, sq_, np, DType::kF64);
  if (static_cast<int64_t>(sq_host_.size()) != np) sq_host_.resize(static_cast<size_t>(np));
  const float* g = grad_shard();
  for (int64_t i = 0; i < np; ++i) {
    const Param& p = ps[static_cast<size_t>(i)];
    const Overlap o = overlap(p, shard_[static_cast<size_t>(params_.unit_of(static_cast<int>(i)))]);
    be_.sum_squares(g + o.at, o.e - o.b, sq_.data<double>() + i);
  }
  be_.download(sq_host_.data(), sq_.raw(), sq_host_.size() * sizeof(double));
  double sq[2] = {0.0, 0.0};  // [sharded over tp, replicated over tp]
  for (int64_t i = 0; i < np; ++i) sq[ps[static_cast<size_t>(i)].info.shard_dim >= 0 ? 0 : 1] += sq_host_[static_cast<size_t>(i)];
  if (zero_ >= 1) mesh_.dp_cp().all_reduce(sq, 2, DType::kF64, ReduceOp::kSum);
  mesh_.tp().all_reduce(sq, 1, DType::kF64, ReduceOp::kSum);
  const double norm = std::sqrt(sq[0] + sq[1]);
  const double clip = config_.train.grad_clip;
  if (clip > 0 && std::isfinite(norm) && norm > clip)
    be_.scale(grad_shard(), static_cast<float>(clip / (norm + 1e-6)), shard_size_);
  return norm;
}

void Optimizer::update(double lr, int64_t step) {
  const TrainConfig& t = config_.train;
  AdamWArgs a;
  a.lr = static_cast<float>(lr);
  a.beta1 = static_cast<float>(t.beta1);
  a.beta2 = static_cast<float>(t.beta2);
  a.eps = static_cast<float>(t.eps);
  a.step = step;
  const float* g = grad_shard();
  const auto& ps = params_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const Param& p = ps[i];
    const Overlap o = overlap(p, shard_[static_cast<size_t>(params_.unit_of(static_cast<int>(i)))]);
    if (o.b >= o.e) continue;
    a.weight_decay = p.info.decay ? static_cast<float>(t.weight_decay) : 0.0f;
    float* w = params_.values() + (params_.values_sharded() ? o.at : o.b);
    be_.adamw_step(a, w, g + o.at, m_.f32() + o.at, v_.f32() + o.at, o.e - o.b);
  }
  norms_stale_ = true;
  if (zero_ == 1 || zero_ == 2) {  // ZeRO-3 gathers each unit where it is read
    // Each unit's updated piece, then every rank's: all_gather's in-place form (recv + rank *
    // count == send), which NCCL and MPI both allow.
    const auto& units = params_.units();
    for (size_t u = 0; u < units.size(); ++u)
      dp_cp_->all_gather(params_.values() + shard_[u].begin, params_.values() + units[u].begin,
                         static_cast<size_t>(shard_[u].size), DType::kF32);
  }
  discard_gradients();
}

void Optimizer::discard_gradients() {
  for (Pending& p : pending_) p->wait();
  pending_.clear();
  for (GradSlot* s : {&embed_slot_, &slots_[0], &slots_[1]}) {
    if (s->pending) s->pending->wait();
    s->pending.reset();
  }
  params_.zero_grads();
  if (zero_ >= 2) be_.fill(grad_shard_.f32(), 0.0f, shard_size_);
}

std::string Optimizer::first_nonfinite_grad() const {
  const int64_t n = zero_ >= 1 ? shard_size_ : params_.size();
  std::vector<float> g(static_cast<size_t>(n));
  be_.download(g.data(), zero_ >= 1 ? grad_shard_.raw() : static_cast<const void*>(params_.grads()),
               g.size() * sizeof(float));
  const auto& ps = params_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const Overlap o = overlap(ps[i], shard_[static_cast<size_t>(params_.unit_of(static_cast<int>(i)))]);
    for (int64_t j = o.at; j < o.at + (o.e - o.b); ++j)
      if (!std::isfinite(g[static_cast<size_t>(j)])) return ps[i].info.name;
  }
  return "";
}

}  // namespace ringtrain
