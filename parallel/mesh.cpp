#include "parallel/mesh.h"

#include <sstream>

#include "src/core/error.h"
#include "src/core/mpi_communicator.h"

namespace ringtrain {

MeshCoord mesh_coord(const MeshShape& s, int rank) {
  MeshCoord c;
  c.tp = rank % s.tp;
  c.cp = (rank / s.tp) % s.cp;
  c.dp = rank / (s.tp * s.cp);
  c.ulysses = c.cp % s.ulysses;
  c.ring = c.cp / s.ulysses;
  return c;
}

int mesh_rank(const MeshShape& s, const MeshCoord& c) { return (c.dp * s.cp + c.cp) * s.tp + c.tp; }

Mesh::Mesh(MPI_Comm world, const MeshShape& shape) : shape_(shape) {
  MPI_CHECK(MPI_Comm_dup(world, &world_comm_));
  MPI_CHECK(MPI_Comm_rank(world_comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(world_comm_, &size_));
  RT_INPUT_CHECK(shape.dp >= 1 && shape.cp >= 1 && shape.tp >= 1 && shape.ulysses >= 1 &&
                     shape.cp % shape.ulysses == 0,
                 "parallel: invalid mesh dp=", shape.dp, " cp=", shape.cp, " tp=", shape.tp,
                 " ulysses=", shape.ulysses);
  RT_INPUT_CHECK(shape.dp * shape.cp * shape.tp == size_, "parallel: dp*cp*tp = ", shape.dp, "*",
                 shape.cp, "*", shape.tp, " = ", shape.dp * shape.cp * shape.tp, " but the job has ",
                 size_, " ranks");
  coord_ = mesh_coord(shape, rank_);
  const MeshCoord& c = coord_;
  // Each split groups the ranks that share every coordinate but the group's own; the key
  // orders members by that coordinate, so rank-in-group == coordinate.
  MPI_CHECK(MPI_Comm_split(world_comm_, c.dp * shape.cp + c.cp, c.tp, &tp_comm_));
  MPI_CHECK(MPI_Comm_split(world_comm_, c.dp * shape.tp + c.tp, c.cp, &cp_comm_));
  MPI_CHECK(MPI_Comm_split(world_comm_, c.cp * shape.tp + c.tp, c.dp, &dp_comm_));
  MPI_CHECK(MPI_Comm_split(world_comm_, c.tp, c.dp * shape.cp + c.cp, &dp_cp_comm_));
  MPI_CHECK(MPI_Comm_split(cp_comm_, c.ring, c.ulysses, &ulysses_comm_));
  MPI_CHECK(MPI_Comm_split(cp_comm_, c.ulysses, c.ring, &ring_comm_));
  MPI_CHECK(MPI_Comm_split_type(world_comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_comm_));
  MPI_CHECK(MPI_Comm_rank(node_comm_, &local_rank_));
  MPI_CHECK(MPI_Comm_size(node_comm_, &local_size_));
  world_ = make_mpi_communicator(world_comm_);
  tp_ = make_mpi_communicator(tp_comm_);
  cp_ = make_mpi_communicator(cp_comm_);
  dp_ = make_mpi_communicator(dp_comm_);
  dp_cp_ = make_mpi_communicator(dp_cp_comm_);
  ulysses_ = make_mpi_communicator(ulysses_comm_);
  ring_ = make_mpi_communicator(ring_comm_);
}

Mesh::~Mesh() {
  world_.reset(); tp_.reset(); cp_.reset(); dp_.reset(); dp_cp_.reset(); ulysses_.reset(); ring_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (MPI_Comm* comm : {&tp_comm_, &cp_comm_, &dp_comm_, &dp_cp_comm_, &ulysses_comm_, &ring_comm_,
                         &node_comm_, &world_comm_})
    if (*comm != MPI_COMM_NULL) MPI_Comm_free(comm);
}

TensorGroups Mesh::host_groups() {
  return TensorGroups{tp_.get(), cp_.get(), dp_.get(), dp_cp_.get(), ulysses_.get(), ring_.get()};
}

std::string Mesh::describe_rank(int rank) const {
  MeshCoord c = mesh_coord(shape_, rank);
  std::ostringstream os;
  os << "rank " << rank << ": dp " << c.dp << " cp " << c.cp << " tp " << c.tp;
  if (shape_.ulysses > 1 && shape_.ulysses < shape_.cp)
    os << " (ulysses " << c.ulysses << " ring " << c.ring << ")";
  return os.str();
}

}  // namespace ringtrain
