// The checkpoint directory: names (DIR/step-000100.h5), the `latest` pointer, keeping the
// newest K, cleaning leftovers of interrupted saves, picking the newest loadable checkpoint,
// and a lock file so that two jobs never write the same directory.
//
// Save protocol (crash safe): write DIR/step-N.h5.partial collectively, close, barrier; rank 0
// renames it to DIR/step-N.h5, then writes DIR/latest (the file name, via a temporary file and
// a rename) last, then removes the oldest beyond checkpoint.keep. A crash at any point leaves
// the previous checkpoint and pointer intact; *.partial leftovers are never loaded and are
// deleted by the next save.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/checkpoint/checkpoint.h"
#include "src/config/config.h"

namespace ringtrain {

class Mesh;
class ParamStore;

// "step-000100.h5"
std::string checkpoint_file_name(int64_t step);

struct CheckpointEntry {
  int64_t step = 0;
  std::string path;
};
// Completed checkpoints in `dir` (step-*.h5, not *.partial), oldest first.
std::vector<CheckpointEntry> list_checkpoints(const std::string& dir);

// The newest checkpoint in `dir` whose header reads back (a damaged newer one is skipped with
// a warning); "" if none. Serial (call on one rank).
std::string newest_valid_checkpoint(const std::string& dir);

// What `spec` names: a checkpoint file, or a directory (its newest valid checkpoint). Input
// error if a directory holds none. Serial.
std::string resolve_checkpoint(const std::string& spec);
// The same decided by rank 0 for every rank (collective; errors raised on every rank).
// allow_none: an empty directory gives "" instead of an error.
std::string resolve_checkpoint(const std::string& spec, Mesh& mesh, bool allow_none = false);

// Seconds spent in the parallel write (all ranks, up to the rename) and, on rank 0, in fsync
// of the file, `latest` and the directory (the disk's share).
struct SaveTiming {
  double write_s = 0.0;
  double sync_s = 0.0;
};

// The whole save protocol above; collective over mesh.world_comm(). Returns the path written.
std::string save_checkpoint(const Config& config, Mesh& mesh, const ParamStore& params,
                            const MomentsView& moments, const CheckpointState& state, SaveTiming* timing = nullptr);

// DIR/LOCK holds "host pid" of the job using the directory. acquire() (collective) is an
// input error if another live job holds it; a lock left by a dead process on this host is taken
// over with a warning; one from another host is taken over only with the environment variable
// RINGTRAIN_TAKE_OVER_LOCK=1 (we cannot see whether that process lives).
class CheckpointLock {
 public:
  CheckpointLock() = default;
  ~CheckpointLock();
  CheckpointLock(const CheckpointLock&) = delete;
  CheckpointLock& operator=(const CheckpointLock&) = delete;
  void acquire(const std::string& dir, Mesh& mesh);
  void release();  // rank 0 removes the file if it is still ours

 private:
  std::string path_;
  bool held_ = false;
};

}  // namespace ringtrain
