// The process mesh: world = dp x cp x tp with tp innermost (neighbouring ranks share a node's
// fastest links), then cp, then dp:  rank = (dp_rank * cp + cp_rank) * tp + tp_rank.
// Hybrid context parallelism splits cp further into ulysses x ring, ulysses innermost:
//   cp_rank = ring_rank * ulysses + ulysses_rank.
#pragma once

#include <memory>
#include <string>

#include <mpi.h>

#include "src/core/communicator.h"

namespace ringtrain {

struct MeshShape {
  int dp = 1;
  int cp = 1;
  int tp = 1;
  int ulysses = 1;  // divides cp; 1 = pure ring, cp = pure Ulysses
};

struct MeshCoord {
  int dp = 0, cp = 0, tp = 0, ulysses = 0, ring = 0;
};

// The communicators that carry tensors of the compute device, one per group: the mesh's own
// (host memory) for the CPU backend, NCCL or staged-MPI ones made by the trainer for a CUDA
// backend. Scalars the host reads (loss sums, norms, flags) always use the mesh's.
struct TensorGroups {
  Communicator* tp = nullptr;
  Communicator* cp = nullptr;
  Communicator* dp = nullptr;
  Communicator* dp_cp = nullptr;
  Communicator* ulysses = nullptr;
  Communicator* ring = nullptr;
};

// Coordinates of global rank `rank` (pure function, used by --dry-run and tests).
MeshCoord mesh_coord(const MeshShape& shape, int rank);
int mesh_rank(const MeshShape& shape, const MeshCoord& coord);

class Mesh {
 public:
  // Collective over `world`; checks size == dp*cp*tp.
  Mesh(MPI_Comm world, const MeshShape& shape);
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  const MeshShape& shape() const { return shape_; }
  const MeshCoord& coord() const { return coord_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // within the node (picks the GPU)
  int local_size() const { return local_size_; }

  Communicator& world() { return *world_; }
  Communicator& tp() { return *tp_; }
  Communicator& cp() { return *cp_; }
  Communicator& dp() { return *dp_; }
  Communicator& cp_ulysses() { return *ulysses_; }  // inside the cp group
  Communicator& cp_ring() { return *ring_; }        // inside the cp group
  // Ranks holding the same parameter shard: the gradients of tp-sharded and replicated
  // parameters are summed over every rank that saw different tokens, i.e. dp x cp.
  Communicator& dp_cp() { return *dp_cp_; }

  MPI_Comm world_comm() const { return world_comm_; }
  MPI_Comm tp_comm() const { return tp_comm_; }
  MPI_Comm cp_comm() const { return cp_comm_; }
  MPI_Comm dp_comm() const { return dp_comm_; }
  MPI_Comm dp_cp_comm() const { return dp_cp_comm_; }
  MPI_Comm cp_ulysses_comm() const { return ulysses_comm_; }
  MPI_Comm cp_ring_comm() const { return ring_comm_; }
  MPI_Comm node_comm() const { return node_comm_; }  // the ranks on this node

  // The mesh's own communicators as TensorGroups (the CPU backend's).
  TensorGroups host_groups();

  // "rank 5: dp 1 cp 0 tp 1 (node rank 1 of 8)"
  std::string describe_rank(int rank) const;

 private:
  MeshShape shape_;
  MeshCoord coord_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  MPI_Comm world_comm_ = MPI_COMM_NULL, tp_comm_ = MPI_COMM_NULL, cp_comm_ = MPI_COMM_NULL,
           dp_comm_ = MPI_COMM_NULL, dp_cp_comm_ = MPI_COMM_NULL,
           ulysses_comm_ = MPI_COMM_NULL, ring_comm_ = MPI_COMM_NULL,
           node_comm_ = MPI_COMM_NULL;
  std::unique_ptr<Communicator> world_, tp_, cp_, dp_, dp_cp_, ulysses_, ring_;
};

}  // namespace ringtrain
