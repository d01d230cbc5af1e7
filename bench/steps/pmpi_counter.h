// Counts the bytes every MPI call of this process moves, per communicator, through the MPI
// profiling interface: pmpi_counter.cpp defines MPI_Allreduce, MPI_Isend, ... which count and
// then call PMPI_Allreduce, PMPI_Isend, ... (MPI standard, chapter "Profiling Interface").
// Linked into a benchmark executable, it sees every call ringtrain_core makes without any hook
// in the mesh. Payload per call, per rank, as CountingCommunicator defines it:
//   MPI_Allreduce / MPI_Iallreduce / MPI_Bcast   count
//   MPI_Reduce_scatter_block                     recvcount * size
//   MPI_Allgather / MPI_Alltoall                 recvcount * size
//   MPI_Isend / MPI_Send                         count (receives are the peers' sends)
// Time: wall time inside blocking collectives per communicator, and inside MPI_Wait* overall
// (the non-blocking ring steps and gradient all-reduces are waited on there).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <mpi.h>

#include "parallel/mesh.h"

namespace ringtrain::bench {

struct GroupTraffic {
  int64_t calls = 0;
  int64_t bytes = 0;
  double blocking_s = 0.0;
  std::map<std::string, int64_t> bytes_by_op;  // "all_reduce" -> bytes
};

// Names a communicator; calls on unnamed communicators are counted as "other".
void pmpi_name_comm(MPI_Comm comm, const std::string& name);
// Names the mesh's groups as the plan's byte counts name them (tp, cp, cp_ring, cp_ulysses, dp,
// dp_cp, world).
void pmpi_name_mesh(Mesh& mesh);
// Forgets every name: after a mesh is freed, MPI may hand its communicators' handles to the next.
void pmpi_forget_names();
// Turns counting on or off (off at start) and clears the counters.
void pmpi_set_counting(bool on);
void pmpi_reset();
const std::map<std::string, GroupTraffic>& pmpi_traffic();
double pmpi_wait_seconds();

}  // namespace ringtrain::bench
