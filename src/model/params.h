// Parameters of the model as this rank holds them: one flat fp32 buffer for the values and
// one for the gradients (so gradient buckets, ZeRO shards and checkpoints are ranges of a
// single array), and per parameter its Hugging Face name, its global shape and which slice of
// it this rank holds.
//
// The flat buffer is a sequence of units: consecutive parameters of one transformer layer (or
// the embedding, or the final norm with the output projection), whose gradients complete
// together in the backward. Under ZeRO each unit is padded to split evenly over the n ranks
// that shard it, and rank r owns the r-th 1/n of every unit: a unit's gradients are then one
// reduce-scatter and its weights one all-gather, and rank r's shard is the concatenation of
// its pieces (unit u's piece at u.begin / n in the shard). ZeRO-2 drops the flat gradient
// buffer and ZeRO-3 keeps only this rank's pieces of the values (ParamLayout).
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

// A unit: parameters [first, last], flat range [begin, begin + size) (size includes padding).
struct ParamUnit {
  int first = 0, last = 0;
  int64_t begin = 0, size = 0;
};

// One piece of a rank's shard: flat elements [begin, begin + size), at `shard_offset` in the
// shard's own buffers.
struct ShardRange {
  int64_t begin = 0, size = 0, shard_offset = 0;
};

// How finalize() lays the buffers out: each unit padded to a multiple of shard_over (the
// ZeRO group's size); without full_grads no flat gradient buffer (ZeRO-2 and 3: each unit's
// gradients live where bind_grads() puts them while its backward runs); without full_values
// the values buffer holds only rank shard_rank's pieces (ZeRO-3: a unit's weights are readable
// while bind_values() points them at a gathered copy).
struct ParamLayout {
  int64_t shard_over = 1;
  int shard_rank = 0;
  bool full_grads = true;
  bool full_values = true;
};

// The elements of one parameter this rank holds in values(): its own elements [lo, hi), at
// values() + at (everything at its flat offset unless the values are sharded).
struct HeldSpan {
  int64_t lo = 0, hi = 0, at = 0;
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
  // Allocates the buffers on the backend's device (host memory without one) as `layout` says,
  // values and gradients zeroed. With `shapes_only` nothing is allocated (--dry-run: offsets
  // and sizes only).
  void finalize(const ParamLayout& layout = {}, Backend* backend = nullptr, bool shapes_only = false);

  const std::vector<ParamUnit>& units() const { return units_; }
  int unit_of(int param) const { return unit_of_[static_cast<size_t>(param)]; }
  int64_t shard_over() const { return layout_.shard_over; }
  // Rank `rank`'s pieces, one per unit, in flat order (with shard_over 1: each whole unit).
  std::vector<ShardRange> shard_ranges(int rank) const;
  // Points the gradients of unit u's parameters into `buffer` (at least u.size elements, the
  // unit's layout); see finalize.
  void bind_grads(int u, const Tensor& buffer);
  // The same for the values (ZeRO-3: the unit's gathered weights, fp32 or bf16).
  void bind_values(int u, const Tensor& buffer);
  // Points one parameter's value at `t` (its local shape's worth of elements).
  void bind_value(int param, const Tensor& t);
  bool values_sharded() const { return !layout_.full_values; }
  HeldSpan held(int param) const;

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param& operator[](int i) { return params_[static_cast<size_t>(i)]; }
  const Param* find(const std::string& name) const;
  // Device memory (host memory on the CPU backend): the flat values, or this rank's shard of
  // them (values_sharded()), values_size() elements.
  float* values() const { return values_.f32(); }
  int64_t values_size() const { return layout_.full_values ? padded_ : padded_ / layout_.shard_over; }
  float* grads() const { return grads_.defined() ? grads_.f32() : nullptr; }  // null without full_grads
  int64_t size() const { return padded_; }  // flat length incl. padding
  int64_t used() const { return used_; }
  void zero_grads();

  // The values as the host sees them (initialization, checkpoints, export): the device buffer
  // itself on the CPU backend, else a host copy that pull_values() refreshes from the device
  // and push_values() sends back.
  float* host_values() const { return host_values_.f32(); }
  void pull_values() const;
  void push_values();
  // Counts push_values() calls: what a copy of the values derived from them compares against.
  uint64_t values_version() const { return version_; }

 private:
  std::vector<Param> params_;
  std::vector<ParamUnit> units_;
  std::vector<int> unit_of_;
  Backend* backend_ = nullptr;
  Tensor values_, grads_, host_values_;
  ParamLayout layout_;
  std::vector<ShardRange> mine_;  // layout_.shard_rank's pieces
  int64_t used_ = 0, padded_ = 0;
  uint64_t version_ = 0;
};

}  // namespace ringtrain
