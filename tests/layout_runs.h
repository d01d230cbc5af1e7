// Training runs compared across layouts and backends (tests/mpi/test_layouts.cpp on the CPU,
// tests/gpu/test_cuda_layouts.cpp on the CUDA backend): the losses of a few steps and the
// global weights after them.
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <map>
#include <string>
#include <vector>

#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/train/trainer.h"
#include "tolerance.h"

namespace ringtrain::test {

struct TrainedRun {
  std::vector<double> losses;
  std::map<std::string, std::vector<float>> weights;  // global tensors
  std::string device;  // Compute::describe(): "cpu", "cuda:0 (...) via NCCL", ...
  double adam_reach = 0.0;  // train.lr x train.steps: the farthest AdamW can move one element
};

// The global tensor of every parameter: each rank places its shard (under ZeRO-3 its piece of
// it), tp ranks (and ZeRO-3's dp x cp ranks) sum.
inline std::map<std::string, std::vector<float>> global_weights(LlamaModel& model, Mesh& mesh) {
  std::map<std::string, std::vector<float>> out;
  ParamStore& ps = model.params();
  ps.pull_values();
  for (int i = 0; i < static_cast<int>(ps.params().size()); ++i) {
    const Param& p = ps[i];
    std::vector<float> g(static_cast<size_t>(shape_numel(p.info.global_shape)), 0.0f);
    const HeldSpan h = ps.held(i);
    const float* w = ps.host_values() + h.at - h.lo;  // element e of the parameter at w[e]
    if (p.info.shard_dim < 0) {
      if (mesh.coord().tp == 0) std::copy(w + h.lo, w + h.hi, g.begin() + h.lo);
    } else {
      const int64_t cols = p.local_shape[1], gcols = p.info.global_shape[1];
      for (int64_t e = h.lo; e < h.hi; ++e) {
        const int64_t r = e / cols, c = e % cols;
        const int64_t gr = p.info.shard_dim == 0 ? r + p.info.shard_offset : r;
        const int64_t gc = p.info.shard_dim == 1 ? c + p.info.shard_offset : c;
        g[static_cast<size_t>(gr * gcols + gc)] = w[e];
      }
    }
    mesh.tp().all_reduce(g.data(), g.size(), DType::kF32, ReduceOp::kSum);
    if (ps.values_sharded()) mesh.dp_cp().all_reduce(g.data(), g.size(), DType::kF32, ReduceOp::kSum);
    out[p.info.name] = std::move(g);
  }
  return out;
}

// Trains `base` with `overrides` for train.steps steps on the ranks of `comm`.
inline TrainedRun train(const char* base, MPI_Comm comm, const std::vector<std::string>& overrides) {
  std::vector<std::string> o = overrides;
  int wr = world_rank(), n = 0;
  MPI_Comm_size(comm, &n);
  o.push_back("run.out_dir=/tmp/ringtrain-test-layouts/" + std::to_string(n) + "-" + std::to_string(wr));
  const Config c = parse_config(base, "layout run", o);
  const MeshShape shape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree};
  Mesh mesh(comm, shape);
  Trainer t(c, mesh);
  TrainedRun run;
  for (int s = 0; s < c.train.steps; ++s) run.losses.push_back(t.step().loss);
  run.weights = global_weights(t.model(), mesh);
  run.device = t.compute().describe();
  run.adam_reach = c.train.lr * c.train.steps;
  return run;
}

inline void expect_same(const TrainedRun& got, const TrainedRun& ref, const std::string& what, bool weights = true) {
  ASSERT_EQ(got.losses.size(), ref.losses.size());
  for (size_t i = 0; i < ref.losses.size(); ++i)
    EXPECT_EQ(compare(&got.losses[i], &ref.losses[i], 1, kF32Layout, "loss"), "")
        << what << " step " << i + 1;
  if (!weights) return;
  for (const auto& [name, w] : ref.weights)
    EXPECT_EQ(compare_adam_weights(got.weights.at(name).data(), w.data(), static_cast<int64_t>(w.size()),
                                   ref.adam_reach, name.c_str()), "")
        << what;
}

// The overrides of a dp x cp x tp layout training on `samples` sequences per global batch:
// micro-batch 2 (1 from dp = 2 on), the rest as gradient accumulation; then `extra`.
inline std::vector<std::string> layout(int dp, int cp, int tp, int samples, std::vector<std::string> extra) {
  const int mb = dp >= 2 ? 1 : 2, accum = samples / (dp * mb);
  std::vector<std::string> o = {"parallel.dp=" + std::to_string(dp), "parallel.cp=" + std::to_string(cp),
                                "parallel.tp=" + std::to_string(tp), "train.micro_batch=" + std::to_string(mb),
                                "train.grad_accum=" + std::to_string(accum)};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

inline std::vector<std::string> with(std::vector<std::string> o, const std::vector<std::string>& more) {
  o.insert(o.end(), more.begin(), more.end());
  return o;
}

inline std::string layout_name(const std::vector<std::string>& o) {
  std::string s;
  for (const auto& x : o) s += x + " ";
  return s;
}

}  // namespace ringtrain::test
