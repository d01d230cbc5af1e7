// Shared helpers of the checkpoint tests (tests/mpi/test_checkpoint_*.cpp): configs from
// configs/test-tiny.yaml with overrides, a scratch directory common to every rank, snapshots
// of a trainer's weights and moments.
#pragma once

#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/train/trainer.h"

namespace ringtrain::test {

inline std::string source_dir() {
  const char* s = std::getenv("RINGTRAIN_SOURCE_DIR");
  return s ? s : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().string();
}

struct Layout {
  int dp = 1, cp = 1, tp = 1;
  int zero = 0;  // parallel.zero
  std::string name() const {
    return "dp" + std::to_string(dp) + "_cp" + std::to_string(cp) + "_tp" + std::to_string(tp) +
           (zero > 0 ? "_zero" + std::to_string(zero) : "");
  }
};

// test-tiny at seq_len 128 with a global batch of 4 samples whatever the dp degree.
inline Config tiny_config(const Layout& l, const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"train.seq_len=128",
                                "parallel.dp=" + std::to_string(l.dp),
                                "parallel.cp=" + std::to_string(l.cp),
                                "parallel.tp=" + std::to_string(l.tp),
                                "parallel.zero=" + std::to_string(l.zero),
                                "train.micro_batch=" + std::to_string(4 / l.dp > 1 ? 2 : 1),
                                "train.grad_accum=" + std::to_string(4 / l.dp / (4 / l.dp > 1 ? 2 : 1)),
                                "run.out_dir=" + dir + "/run",
                                "checkpoint.dir=" + dir + "/ckpt",
                                "checkpoint.resume=none"};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_config(source_dir() + "/configs/test-tiny.yaml", o);
}

inline MeshShape shape_of(const Layout& l) { return MeshShape{l.dp, l.cp, l.tp, 1}; }

// A fresh directory with the same name on every rank of `comm`.
inline std::string scratch_dir(MPI_Comm comm, const std::string& tag) {
  char buf[256] = {0};
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    std::string p = "/tmp/rt_ckpt_" + tag + "_" + std::to_string(::getpid());
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    p.copy(buf, sizeof buf - 1);
  }
  MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, comm);
  return buf;
}

struct Snapshot {
  std::vector<float> values, m, v;
};

inline Snapshot snapshot(Trainer& t) {
  Snapshot s;
  ParamStore& p = t.model().params();
  p.pull_values();
  s.values.assign(p.host_values(), p.host_values() + p.values_size());
  Optimizer& o = t.optimizer();
  o.pull_state();
  s.m.assign(o.exp_avg_host(), o.exp_avg_host() + o.shard_size());
  s.v.assign(o.exp_avg_sq_host(), o.exp_avg_sq_host() + o.shard_size());
  return s;
}

}  // namespace ringtrain::test
