#include "src/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "parallel/mesh.h"
#include "src/core/error.h"

namespace ringtrain {

Optimizer::Optimizer(const Config& config, Mesh& mesh, Backend& backend, const TensorGroups& groups,
                     ParamStore& params, std::vector<int> tp_partial)
    : config_(config),
      mesh_(mesh),
      be_(backend),
      tp_(groups.tp),
      cp_(groups.cp),
      dp_(groups.dp),
      dp_cp_(groups.dp_cp),
      params_(params),
      tp_partial_(std::move(tp_partial)) {
  const int dp = mesh.shape().dp;
  zero1_ = config.parallel.zero1 && dp > 1;
  RT_CHECK(params.size() % (zero1_ ? dp : 1) == 0, "flat buffer not padded for ZeRO-1");
  shard_size_ = zero1_ ? params.size() / dp : params.size();
  shard_begin_ = zero1_ ? mesh.coord().dp * shard_size_ : 0;
  m_ = be_.alloc(shard_size_);
  v_ = be_.alloc(shard_size_);
  be_.fill(m_.f32(), 0.0f, shard_size_);
  be_.fill(v_.f32(), 0.0f, shard_size_);
  if (zero1_) grad_shard_ = be_.alloc(shard_size_);
  if (be_.on_host()) {
    host_m_ = m_;
    host_v_ = v_;
  } else {
    host_m_ = Tensor::zeros({shard_size_});
    host_v_ = Tensor::zeros({shard_size_});
  }
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

void Optimizer::grads_ready(int first, int last, bool sync) {
  if (!sync) return;
  for (int i : tp_partial_)  // norm weights under sequence parallelism: partial over tp
    if (i >= first && i <= last)
      tp_->all_reduce(params_[i].grad.raw(), static_cast<size_t>(params_[i].numel), DType::kF32, ReduceOp::kSum);
  const int64_t begin = params_[first].offset;
  const int64_t end = params_[last].offset + params_[last].numel;
  Communicator& group = zero1_ ? *cp_ : *dp_cp_;
  if (group.size() > 1)
    pending_.push_back(group.all_reduce_async(params_.grads() + begin, static_cast<size_t>(end - begin),
                                              DType::kF32, ReduceOp::kSum));
}

float* Optimizer::grad_shard() { return zero1_ ? grad_shard_.f32() : params_.grads(); }

double Optimizer::finish_gradients() {
  for (Pending& p : pending_) p->wait();
  pending_.clear();
  if (zero1_)
    dp_->reduce_scatter(params_.grads(), grad_shard_.f32(), static_cast<size_t>(shard_size_), DType::kF32,
                        ReduceOp::kSum);
  // Global norm: tp-sharded parameters are summed over tp, replicated ones counted once;
  // under ZeRO-1 each dp rank holds a disjoint slice, summed over dp. The two sums are host
  // scalars (read for clipping and the non-finite check) and travel over the mesh's host
  // communicators.
  // One sum per parameter on the device, downloaded together, added here in parameter order.
  const auto& ps = params_.params();
  const int64_t np = static_cast<int64_t>(ps.size());
  ensure_buffer(be_, sq_, np, DType::kF64);
  if (static_cast<int64_t>(sq_host_.size()) != np) sq_host_.resize(static_cast<size_t>(np));
  const float* g = grad_shard();
  const int64_t lo = shard_begin_, hi = shard_begin_ + shard_size_;
  for (int64_t i = 0; i < np; ++i) {
    const Param& p = ps[static_cast<size_t>(i)];
    const int64_t b = std::max(lo, p.offset), e = std::min(hi, p.offset + p.numel);
    be_.sum_squares(e > b ? g + (b - lo) : g, std::max<int64_t>(0, e - b), sq_.data<double>() + i);
  }
  be_.download(sq_host_.data(), sq_.raw(), sq_host_.size() * sizeof(double));
  double sq[2] = {0.0, 0.0};  // [sharded over tp, replicated over tp]
  for (int64_t i = 0; i < np; ++i) sq[ps[static_cast<size_t>(i)].info.shard_dim >= 0 ? 0 : 1] += sq_host_[static_cast<size_t>(i)];
  if (zero1_) mesh_.dp().all_reduce(sq, 2, DType::kF64, ReduceOp::kSum);
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
  const int64_t lo = shard_begin_, hi = shard_begin_ + shard_size_;
  for (const Param& p : params_.params()) {
    const int64_t b = std::max(lo, p.offset), e = std::min(hi, p.offset + p.numel);
    if (b >= e) continue;
    a.weight_decay = p.info.decay ? static_cast<float>(t.weight_decay) : 0.0f;
    be_.adamw_step(a, params_.values() + b, g + (b - lo), m_.f32() + (b - lo), v_.f32() + (b - lo), e - b);
  }
  if (zero1_) {
    // The updated slice, then every dp rank's: all_gather's in-place form (recv + rank *
    // count == send), which NCCL and MPI both allow.
    dp_->all_gather(params_.values() + lo, params_.values(), static_cast<size_t>(shard_size_), DType::kF32);
  }
  params_.zero_grads();
}

void Optimizer::discard_gradients() {
  for (Pending& p : pending_) p->wait();
  pending_.clear();
  params_.zero_grads();
}

std::string Optimizer::first_nonfinite_grad() const {
  std::vector<float> g(static_cast<size_t>(params_.size()));
  be_.download(g.data(), params_.grads(), g.size() * sizeof(float));
  for (const Param& p : params_.params())
    for (int64_t i = 0; i < p.numel; ++i)
      if (!std::isfinite(g[static_cast<size_t>(p.offset + i)])) return p.info.name;
  return "";
}

}  // namespace ringtrain
