// Checkpoints: one HDF5 file per checkpoint, written collectively with parallel HDF5 (MPI-IO)
// and readable by any layout (and by h5py).
//
// File layout (format version 1):
//   /                              attributes: format = "ringtrain-checkpoint", format_version,
//                                  step, tokens_seen, lr (of the last step taken), seed,
//                                  data_position (= step: sample i of step s is a pure function
//                                  of (seed, s, i), so the step is the loader's whole state),
//                                  mesh_dp, mesh_cp, mesh_tp, mesh_ulysses, mesh_cp_mode,
//                                  mesh_zero1, mesh_zero (the writer's layout and ZeRO level,
//                                  informational; mesh_zero absent in older files),
//                                  model_vocab_size, model_d_model, model_n_layers,
//                                  model_n_heads, model_n_kv_heads, model_d_ff (resolved),
//                                  model_tie_embeddings, config (the resolved YAML text)
//   /model/<HF name>               fp32 weights (the master copy), global unsharded shape,
//                                  e.g. /model/model.layers.0.self_attn.q_proj.weight
//   /optimizer/exp_avg/<HF name>     AdamW first moment, global shape
//   /optimizer/exp_avg_sq/<HF name>  AdamW second moment, global shape
// Every dataset is chunked and carries the Fletcher32 checksum filter. Files use HDF5's 1.8+
// object format (checksummed metadata, library version bounds V18..LATEST, links and attributes
// kept in the checksummed object headers) and fixed-length UTF-8 string attributes (h5py reads
// them as bytes); files of the older format still load, after src/checkpoint/h5_util.h checks
// their unchecksummed structures. There is no stateful
// RNG to save: initialization and data are pure functions of run.seed (stored) and the step.
// The learning rate is a function of the step; the stored lr is for people and tools.
//
// Writing: every rank takes part in each collective call; a rank writes only the hyperslab it
// owns (parameters replicated over tp by tp rank 0, over dp/cp by dp = cp = 0; ZeRO-sharded
// moments, and ZeRO-3's weights, by the dp x cp rank whose pieces hold them). Reading: each rank reads the hyperslabs its own
// layout needs, so any layout resumes any checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/config/config.h"
#include "src/model/params.h"

namespace ringtrain {

class Mesh;

inline constexpr int kCheckpointFormatVersion = 1;

// The optimizer state a checkpoint holds: this rank's ranges of the flat parameter buffer (one
// per unit, src/model/params.h; ZeRO shards each over dp x cp) and its AdamW moments in host
// memory, each range at its shard_offset. The trainer copies the moments from the device
// before a save and back after a load.
struct MomentsView {
  std::vector<ShardRange> ranges;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
};

struct CheckpointState {
  int64_t step = 0;
  int64_t tokens_seen = 0;
  double lr = 0.0;
};

// Header of a checkpoint file as stored (no tensor data).
struct CheckpointHeader {
  int version = 0;
  int64_t step = 0, tokens_seen = 0, data_position = 0;
  double lr = 0.0;
  uint64_t seed = 0;
  int mesh_dp = 1, mesh_cp = 1, mesh_tp = 1, mesh_ulysses = 1;
  std::string mesh_cp_mode;
  bool mesh_zero1 = false;
  int mesh_zero = 0;
  int vocab_size = 0, d_model = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, d_ff = 0;
  bool tie_embeddings = false;
  std::string config_yaml;
};

// Writes `path` (DIR/step-000100.h5) collectively over mesh.world_comm(): first as
// `path`.partial, closed, then rank 0 renames it. Does not touch `latest` or other files
// (see checkpoint_files.h: save_checkpoint does the whole protocol).
void write_checkpoint_file(const std::string& path, const Config& config, Mesh& mesh,
                           const ParamStore& params, const MomentsView& moments,
                           const CheckpointState& state);

// Reads `path` into this rank's parameters (and, if `moments` is not null, the moments),
// resharding from whatever layout wrote it. Checks format, version, model shape, names,
// shapes, dtypes and checksums; any problem is an input error (exit 2) naming the file and
// what is wrong, raised identically on every rank. Collective over mesh.world_comm().
CheckpointState read_checkpoint_file(const std::string& path, const Config& config, Mesh& mesh,
                                     ParamStore& params, const MomentsView* moments);

// Serial (one process) access for inspect/export/tests: opens with the default driver.
CheckpointHeader read_checkpoint_header(const std::string& path);
// Dataset names under a group ("model", "optimizer/exp_avg", ...), sorted.
std::vector<std::string> checkpoint_tensor_names(const std::string& path, const std::string& group);
// Shape of a dataset (full path inside the file).
std::vector<int64_t> checkpoint_tensor_shape(const std::string& path, const std::string& dataset);
// Reads a whole fp32 dataset (full path inside the file, e.g. "model/lm_head.weight").
std::vector<float> read_checkpoint_tensor(const std::string& path, const std::string& dataset,
                                          std::vector<int64_t>* shape);

// Quick validity check used to pick the newest loadable checkpoint: opens and reads the
// header. Returns "" if it looks valid, else the reason.
std::string checkpoint_problem(const std::string& path);

}  // namespace ringtrain
