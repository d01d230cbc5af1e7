#include "src/model/params.h"

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

void ParamStore::finalize(int64_t pad_to) {
  padded_ = (used_ + pad_to - 1) / pad_to * pad_to;
  values_ = Tensor::zeros({padded_});
  grads_ = Tensor::zeros({padded_});
  for (Param& p : params_) {
    p.value = values_.slice0(p.offset, p.numel).view(p.local_shape);
    p.grad = grads_.slice0(p.offset, p.numel).view(p.local_shape);
  }
}

const Param* ParamStore::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.info.name == name) return &p;
  return nullptr;
}

}  // namespace ringtrain
