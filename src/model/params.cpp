#include "src/model/params.h"

#include "kernels/backend.h"
#include "src/core/error.h"

namespace ringtrain {

int ParamStore::add(ParamInfo info) {
  RT_CHECK(!values_.defined(), "ParamStore::add after finalize");
  Param p;
  p.local_shape = info.global_shape;
  if (info.shard_dim >= 0) p.local_shape[static_cast<size_t>(info.shard_dim)] = info.shard_size;
  p.numel = shape_numel(p.local_shape);
  p.offset = used_;
  used_ += p.numel;
  p.info = std::move(info);
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

void ParamStore::finalize(int64_t pad_to, Backend* backend, bool shapes_only) {
  padded_ = (used_ + pad_to - 1) / pad_to * pad_to;
  if (shapes_only) return;
  backend_ = backend && !backend->on_host() ? backend : nullptr;
  if (backend_) {
    values_ = backend_->alloc(padded_);
    grads_ = backend_->alloc(padded_);
    backend_->fill(values_.f32(), 0.0f, padded_);
    backend_->fill(grads_.f32(), 0.0f, padded_);
    host_values_ = Tensor::zeros({padded_});
  } else {
    values_ = Tensor::zeros({padded_});
    grads_ = Tensor::zeros({padded_});
    host_values_ = values_;
  }
  for (Param& p : params_) {
    p.value = values_.slice0(p.offset, p.numel).view(p.local_shape);
    p.grad = grads_.slice0(p.offset, p.numel).view(p.local_shape);
  }
}

void ParamStore::zero_grads() {
  if (backend_)
    backend_->fill(grads_.f32(), 0.0f, padded_);
  else
    grads_.zero_();
}

void ParamStore::pull_values() const {
  if (backend_) backend_->download(host_values_.raw(), values_.raw(), values_.nbytes());
}

void ParamStore::push_values() {
  if (backend_) backend_->upload(values_.raw(), host_values_.raw(), values_.nbytes());
}

const Param* ParamStore::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.info.name == name) return &p;
  return nullptr;
}

}  // namespace ringtrain
