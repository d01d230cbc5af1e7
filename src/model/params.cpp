#include "src/model/params.h"

#include <algorithm>

#include "kernels/backend.h"
#include "src/core/error.h"

namespace ringtrain {

int ParamStore::add(ParamInfo info) {
  RT_CHECK(!values_.defined(), "ParamStore::add after finalize");
  Param p;
  p.local_shape = info.global_shape;
  if (info.shard_dim >= 0) p.local_shape[static_cast<size_t>(info.shard_dim)] = info.shard_size;
  p.numel = shape_numel(p.local_shape);
  used_ += p.numel;
  p.info = std::move(info);
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

void ParamStore::finalize(const ParamLayout& layout, Backend* backend, bool shapes_only) {
  const int64_t shard_over = layout.shard_over;
  RT_CHECK(shard_over >= 1 && layout.shard_rank >= 0 && layout.shard_rank < shard_over, "ParamStore::finalize: rank ",
           layout.shard_rank, " of ", shard_over);
  layout_ = layout;
  const bool full_grads = layout.full_grads, full_values = layout.full_values;
  // Units: runs of parameters of the same layer (embedding, layers, final norm + head).
  units_.clear();
  unit_of_.assign(params_.size(), 0);
  int64_t at = 0;
  for (int i = 0; i < static_cast<int>(params_.size()); ++i) {
    Param& p = params_[static_cast<size_t>(i)];
    if (units_.empty() || p.info.layer != params_[static_cast<size_t>(units_.back().last)].info.layer) {
      if (!units_.empty()) at = units_.back().begin + units_.back().size;
      units_.push_back({i, i, at, 0});
    }
    ParamUnit& u = units_.back();
    u.last = i;
    p.offset = u.begin + u.size;
    u.size += p.numel;
    unit_of_[static_cast<size_t>(i)] = static_cast<int>(units_.size()) - 1;
    if (i + 1 == static_cast<int>(params_.size()) ||
        params_[static_cast<size_t>(i) + 1].info.layer != p.info.layer)
      u.size = (u.size + shard_over - 1) / shard_over * shard_over;
  }
  padded_ = units_.empty() ? 0 : units_.back().begin + units_.back().size;
  mine_ = shard_ranges(layout.shard_rank);
  if (shapes_only) return;
  const int64_t nv = values_size();
  backend_ = backend && !backend->on_host() ? backend : nullptr;
  if (backend_) {
    values_ = backend_->alloc(nv);
    backend_->fill(values_.f32(), 0.0f, nv);
    if (full_grads) {
      grads_ = backend_->alloc(padded_);
      backend_->fill(grads_.f32(), 0.0f, padded_);
    }
    host_values_ = Tensor::zeros({nv});
  } else {
    values_ = Tensor::zeros({nv});
    if (full_grads) grads_ = Tensor::zeros({padded_});
    host_values_ = values_;
  }
  for (Param& p : params_) {
    if (full_values) p.value = values_.slice0(p.offset, p.numel).view(p.local_shape);
    if (full_grads) p.grad = grads_.slice0(p.offset, p.numel).view(p.local_shape);
  }
}

std::vector<ShardRange> ParamStore::shard_ranges(int rank) const {
  std::vector<ShardRange> out;
  for (const ParamUnit& u : units_) {
    const int64_t piece = u.size / layout_.shard_over;
    out.push_back({u.begin + rank * piece, piece, u.begin / layout_.shard_over});
  }
  return out;
}

void ParamStore::bind_grads(int u, const Tensor& buffer) {
  const ParamUnit& unit = units_[static_cast<size_t>(u)];
  for (int i = unit.first; i <= unit.last; ++i) {
    Param& p = params_[static_cast<size_t>(i)];
    p.grad = buffer.slice0(p.offset - unit.begin, p.numel).view(p.local_shape);
  }
}

void ParamStore::bind_values(int u, const Tensor& buffer) {
  const ParamUnit& unit = units_[static_cast<size_t>(u)];
  for (int i = unit.first; i <= unit.last; ++i) {
    Param& p = params_[static_cast<size_t>(i)];
    p.value = buffer.slice0(p.offset - unit.begin, p.numel).view(p.local_shape);
  }
}

void ParamStore::bind_value(int i, const Tensor& t) {
  Param& p = params_[static_cast<size_t>(i)];
  p.value = t.view(p.local_shape);
}

HeldSpan ParamStore::held(int i) const {
  const Param& p = params_[static_cast<size_t>(i)];
  if (layout_.full_values) return {0, p.numel, p.offset};
  const ShardRange& r = mine_[static_cast<size_t>(unit_of(i))];
  const int64_t b = std::max(r.begin, p.offset), e = std::max(b, std::min(r.begin + r.size, p.offset + p.numel));
  return {b - p.offset, e - p.offset, r.shard_offset + (b - r.begin)};
}

void ParamStore::zero_grads() {
  if (!grads_.defined()) return;
  if (backend_)
    backend_->fill(grads_.f32(), 0.0f, padded_);
  else
    grads_.zero_();
}

void ParamStore::pull_values() const {
  if (backend_) backend_->download(host_values_.raw(), values_.raw(), values_.nbytes());
}

void ParamStore::push_values() {
  ++version_;
  if (backend_) backend_->upload(values_.raw(), host_values_.raw(), values_.nbytes());
}

const Param* ParamStore::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.info.name == name) return &p;
  return nullptr;
}

}  // namespace ringtrain
