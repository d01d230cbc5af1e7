// Gradient synchronization and the AdamW update over the model's flat parameter buffers.
//
// Gradients of every parameter are summed over dp x cp (each of those ranks saw different
// tokens; tp shards are different parameters and are never mixed). The sum starts unit by unit
// (src/model/params.h: a layer's parameters, the embedding, the head) while backward is still
// running: the model reports each unit's gradients complete and the unit is reduced
// asynchronously, overlapping the layers below.
//
// parallel.zero shards over the n = dp x cp ranks, rank r owning the r-th 1/n of every unit:
//   0: each unit is all-reduced; every rank keeps the moments of everything and updates it all.
//   1: at the last micro-step each unit is reduce-scattered instead, leaving rank r the summed
//      gradients of its pieces; AdamW updates those pieces of the fp32 weights with moments that
//      exist only there, and one all-gather per unit restores the full weights.
//   2: as 1, and the flat gradient buffer does not exist: the backward writes a unit's
//      gradients into one of two rotating unit buffers (a tied embedding into its own, as the
//      head writes it first), which are reduce-scattered at every micro-step as the backward
//      finishes them and added into the gradient shard.
//   3: as 2, and the values hold only this rank's pieces (the fp32 master, updated in place):
//      the model acquires a unit before reading its weights, which all-gathers them into a unit
//      buffer (or waits for the gather it named as the next unit while the previous one
//      computed), and releases it after use, freeing the buffer for the next prefetch; two
//      rotating buffers (and a tied embedding's own) serve a step (every layer's with
//      parallel.zero3_keep_for_backward).
//      On a GPU in bf16 (train.precision) every unit but the embedding is gathered in bf16: the
//      owner casts its fp32 piece (the GEMMs would round the weights to the same bf16 values),
//      the all-gather moves half the bytes and the GEMMs multiply the gathered copy where it
//      landed (Backend::bf16_weights_at). The RMSNorm weights of those units are read in fp32:
//      every rank keeps all of them whole (2 L + 1 vectors of d_model), rebuilt after each
//      update by one all-reduce of this rank's pieces (the others' zeros: exact). The embedding,
//      which the lookup reads in fp32, is gathered in fp32 into a buffer of its own.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/backend.h"
#include "src/core/communicator.h"
#include "src/config/config.h"
#include "src/model/params.h"

namespace ringtrain {

class Mesh;
struct TensorGroups;

class Optimizer {
 public:
  // Moments and updates on `backend`'s device; gradients travel over `groups`, scalars over
  // the mesh's host communicators.
  Optimizer(const Config& config, Mesh& mesh, Backend& backend, const TensorGroups& groups, ParamStore& params,
            std::vector<int> tp_partial);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // The model's unit hooks (LlamaModel::UnitHooks): ZeRO-2/3 bind a unit's gradients to a
  // zeroed buffer; ZeRO-3 gathers, prefetches and frees a unit's weights.
  void grads_begin(int unit);
  void acquire_values(int unit);
  void prefetch_values(int unit);
  void release_values(int unit);
  // For the model's GradReady callback; only the last micro-step of a step passes sync=true.
  void grads_ready(int first, int last, bool sync);
  // Waits for the buckets, finishes the reduction, clips by the global norm. Returns the norm
  // before clipping (identical on every rank).
  double finish_gradients();
  // AdamW at learning rate lr; step is 1-based (bias correction).
  void update(double lr, int64_t step);
  void discard_gradients();  // skip a step (non-finite gradients)

  // The flat ranges whose moments are held here, each at its offset in the moment buffers.
  const std::vector<ShardRange>& shard() const { return shard_; }
  int64_t shard_size() const { return shard_size_; }
  // The moments as the host sees them (checkpoints): the device buffers themselves on the CPU
  // backend, else host copies that pull_state() refreshes and push_state() sends back.
  float* exp_avg_host() { return host_m_.f32(); }
  float* exp_avg_sq_host() { return host_v_.f32(); }
  void pull_state();
  void push_state();
  // Name of the first parameter with a non-finite gradient ("" if none; sharded: among the
  // gradients summed here).
  std::string first_nonfinite_grad() const;

 private:
  // ZeRO-2: a unit's gradient buffer and the reduce-scatter reading it.
  struct GradSlot {
    Tensor grads, piece;  // the unit's gradients; this rank's reduced piece before it is added
    Pending pending;
    int unit = -1;
  };
  void settle(GradSlot& slot);  // waits for the slot's reduce-scatter, adds its piece
  // ZeRO-3: a unit's gathered weights.
  struct ValueSlot {
    Tensor values;    // fp32, or bf16 for the units gathered in bf16
    Tensor staging;   // bf16: this rank's piece, cast for the gather
    Pending pending;  // a prefetch's gather
    int unit = -1;    // -1: free
  };
  ValueSlot* value_slot(int unit);  // the slot holding `unit`, or null
  ValueSlot& gather_into(int unit, bool async);
  bool bf16_unit(int unit) const { return gather_bf16_ && unit != 0; }
  void refresh_norms();  // norms_ from every rank's pieces
  float* grad_shard();
  Config config_;
  Mesh& mesh_;
  Backend& be_;
  Communicator* tp_;
  Communicator* dp_cp_;
  ParamStore& params_;
  std::vector<int> tp_partial_;
  int zero_ = 0;
  std::vector<ShardRange> shard_;
  int64_t shard_size_ = 0;
  Tensor m_, v_, grad_shard_, host_m_, host_v_;
  Tensor sq_;                      // per parameter: its gradient's sum of squares (device)
  std::vector<double> sq_host_;
  std::vector<Pending> pending_;
  bool embed_own_ = false;         // the embedding has buffers of its own (a tied head)
  GradSlot embed_slot_;            // ZeRO-2: the first unit (the embedding)
  GradSlot slots_[2];              // ZeRO-2: every other unit, in turn
  int next_slot_ = 0;
  ValueSlot embed_values_;         // ZeRO-3: the first unit (the embedding), tied or in bf16
  std::deque<ValueSlot> values_;   // ZeRO-3: every other unit's, grown when none is free
  int64_t widest_ = 0;             // the largest unit that takes turns in the gradient buffers
  int64_t widest_values_ = 0;      // ... in the weight buffers
  bool gather_bf16_ = false;       // ZeRO-3 on a GPU in bf16
  Tensor norms_;                   // gather_bf16_: the 1-D weights of the bf16 units, whole
  std::vector<int64_t> norm_at_;   // per parameter: its offset in norms_ (-1: not there)
  bool norms_stale_ = true;        // an update changed them since refresh_norms
  uint64_t norms_version_ = 0;     // params' values_version() at refresh_norms
};

}  // namespace ringtrain
