// Gradient synchronization and the AdamW update over the model's flat parameter buffers.
//
// Gradients of every parameter are summed over dp x cp (each of those ranks saw different
// tokens; tp shards are different parameters and are never mixed). The sum starts bucket by
// bucket while backward is still running: the model reports each layer's gradients complete
// and its contiguous range is all-reduced asynchronously, overlapping the layers below.
// With ZeRO-1 the range is summed over cp only, and at the end one reduce-scatter over dp
// leaves each dp rank the summed gradients of its 1/dp slice of the flat buffer; AdamW
// updates that slice with moments that exist only there, and an all-gather over dp restores
// the full parameters.
#pragma once

#include <cstdint>
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

  // For the model's GradReady callback; only the last micro-step of a step passes sync=true.
  void grads_ready(int first, int last, bool sync);
  // Waits for the buckets, finishes the reduction, clips by the global norm. Returns the norm
  // before clipping (identical on every rank).
  double finish_gradients();
  // AdamW at learning rate lr; step is 1-based (bias correction).
  void update(double lr, int64_t step);
  void discard_gradients();  // skip a step (non-finite gradients)

  // The flat range of moments held here: [shard_begin, shard_begin + shard_size).
  int64_t shard_begin() const { return shard_begin_; }
  int64_t shard_size() const { return shard_size_; }
  // The moments as the host sees them (checkpoints): the device buffers themselves on the CPU
  // backend, else host copies that pull_state() refreshes and push_state() sends back.
  float* exp_avg_host() { return host_m_.f32(); }
  float* exp_avg_sq_host() { return host_v_.f32(); }
  void pull_state();
  void push_state();
  // Name of the first parameter with a non-finite gradient ("" if none).
  std::string first_nonfinite_grad() const;

 private:
  float* grad_shard();
  Config config_;
  Mesh& mesh_;
  Backend& be_;
  Communicator* tp_;
  Communicator* cp_;
  Communicator* dp_;
  Communicator* dp_cp_;
  ParamStore& params_;
  std::vector<int> tp_partial_;
  bool zero1_ = false;
  int64_t shard_begin_ = 0, shard_size_ = 0;
  Tensor m_, v_, grad_shard_, host_m_, host_v_;
  Tensor sq_;                      // per parameter: its gradient's sum of squares (device)
  std::vector<double> sq_host_;
  std::vector<Pending> pending_;
};

}  // namespace ringtrain
