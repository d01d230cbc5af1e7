// Parameters of the model as this rank holds them: one flat fp32 buffer for the values and
// one for the gradients (so gradient buckets, ZeRO-1 shards and checkpoints are ranges of a
// single array), and per parameter its Hugging Face name, its global shape and which slice of
// it this rank holds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/core/tensor.h"

namespace ringtrain {

class Backend;

struct ParamInfo {
  std::string name;     // Hugging Face Llama name, e.g. model.layers.3.self_attn.q_proj.weight
  Shape global_shape;   // the unsharded tensor
  int shard_dim = -1;   // dimension split over tp; -1: replicated over tp
  int64_t shard_offset = 0;  // first index along shard_dim held here
  int64_t shard_size = 0;    // extent along shard_dim held here
  bool decay = true;         // AdamW weight decay applies (matrices yes, norms no)
  int layer = -1;            // transformer layer, -1 for embedding/head/final norm
};

struct Param {
  ParamInfo info;
  Shape local_shape;
  int64_t offset = 0;  // into the flat buffers
  int64_t numel = 0;
  Tensor value;  // views into the flat buffers
  Tensor grad;
};

class ParamStore {
 public:
  // Registers a parameter; buffers are allocated by finalize(). Returns its index.
  int add(ParamInfo info);
  // Allocates the flat buffers on the backend's device (host memory without one), padded to a
  // multiple of `pad_to` elements (ZeRO-1 shards), values and gradients zeroed. With
  // `shapes_only` nothing is allocated (--dry-run: offsets and sizes only).
  void finalize(int64_t pad_to = 1, Backend* backend = nullptr, bool shapes_only = false);

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param& operator[](int i) { return params_[static_cast<size_t>(i)]; }
  const Param* find(const std::string& name) const;
  // Device memory (host memory on the CPU backend).
  float* values() const { return values_.f32(); }
  float* grads() const { return grads_.f32(); }
  int64_t size() const { return padded_; }  // flat length incl. padding
  int64_t used() const { return used_; }
  void zero_grads();

  // The values as the host sees them (initialization, checkpoints, export): the device buffer
  // itself on the CPU backend, else a host copy that pull_values() refreshes from the device
  // and push_values() sends back.
  float* host_values() const { return host_values_.f32(); }
  void pull_values() const;
  void push_values();

 private:
  std::vector<Param> params_;
  Backend* backend_ = nullptr;
  Tensor values_, grads_, host_values_;
  int64_t used_ = 0, padded_ = 0;
};

}  // namespace ringtrain
