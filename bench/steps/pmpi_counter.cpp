// MPI profiling-interface wrappers that count payload bytes per communicator (pmpi_counter.h).
// Each wrapper forwards to the PMPI_ entry point with the same arguments, so behaviour is
// unchanged; only the calls ringtrain makes are wrapped.
#include "bench/steps/pmpi_counter.h"

#include <chrono>
#include <vector>

namespace ringtrain::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct State {
  bool counting = false;
  std::vector<std::pair<MPI_Comm, std::string>> names;
  std::map<std::string, GroupTraffic> traffic;
  double wait_s = 0.0;
};

State& state() {
  static State s;
  return s;
}

const std::string& name_of(MPI_Comm comm) {
  static const std::string other = "other";
  for (const auto& [c, n] : state().names)
    if (c == comm) return n;
  return other;
}

int64_t type_bytes(MPI_Datatype t) {
  int size = 0;
  PMPI_Type_size(t, &size);
  return size;
}

int comm_size(MPI_Comm comm) {
  int n = 1;
  PMPI_Comm_size(comm, &n);
  return n;
}

void add(MPI_Comm comm, const char* op, int64_t bytes, double seconds) {
  State& s = state();
  if (!s.counting) return;
  GroupTraffic& g = s.traffic[name_of(comm)];
  g.calls += 1;
  g.bytes += bytes;
  g.blocking_s += seconds;
  g.bytes_by_op[op] += bytes;
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

void pmpi_name_comm(MPI_Comm comm, const std::string& name) {
  for (const auto& entry : state().names)
    if (entry.first == comm) return;  // first name wins
  state().names.emplace_back(comm, name);
}

void pmpi_name_mesh(Mesh& mesh) {
  pmpi_name_comm(mesh.tp_comm(), "tp");
  pmpi_name_comm(mesh.cp_comm(), "cp");
  pmpi_name_comm(mesh.cp_ring_comm(), "cp_ring");
  pmpi_name_comm(mesh.cp_ulysses_comm(), "cp_ulysses");
  pmpi_name_comm(mesh.dp_comm(), "dp");
  pmpi_name_comm(mesh.dp_cp_comm(), "dp_cp");
  pmpi_name_comm(mesh.world_comm(), "world");
}
void pmpi_forget_names() { state().names.clear(); }
void pmpi_set_counting(bool on) { state().counting = on; }
void pmpi_reset() {
  state().traffic.clear();
  state().wait_s = 0.0;
}
const std::map<std::string, GroupTraffic>& pmpi_traffic() { return state().traffic; }
double pmpi_wait_seconds() { return state().wait_s; }

}  // namespace ringtrain::bench

using ringtrain::bench::add;
using ringtrain::bench::comm_size;
using ringtrain::bench::since;
using ringtrain::bench::type_bytes;

extern "C" {

int MPI_Allreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                  MPI_Comm comm) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
  add(comm, "all_reduce", count * type_bytes(datatype), since(t0));
  return rc;
}

int MPI_Iallreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                   MPI_Comm comm, MPI_Request* request) {
  add(comm, "all_reduce", count * type_bytes(datatype), 0.0);
  return PMPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request);
}

int MPI_Ireduce_scatter_block(const void* sendbuf, void* recvbuf, int recvcount, MPI_Datatype datatype,
                              MPI_Op op, MPI_Comm comm, MPI_Request* request) {
  add(comm, "reduce_scatter", int64_t{recvcount} * comm_size(comm) * type_bytes(datatype), 0.0);
  return PMPI_Ireduce_scatter_block(sendbuf, recvbuf, recvcount, datatype, op, comm, request);
}

int MPI_Reduce_scatter_block(const void* sendbuf, void* recvbuf, int recvcount, MPI_Datatype datatype,
                             MPI_Op op, MPI_Comm comm) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Reduce_scatter_block(sendbuf, recvbuf, recvcount, datatype, op, comm);
  add(comm, "reduce_scatter", int64_t{recvcount} * comm_size(comm) * type_bytes(datatype), since(t0));
  return rc;
}

int MPI_Allgather(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, int recvcount,
                  MPI_Datatype recvtype, MPI_Comm comm) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
  add(comm, "all_gather", int64_t{recvcount} * comm_size(comm) * type_bytes(recvtype), since(t0));
  return rc;
}

int MPI_Iallgather(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, int recvcount,
                   MPI_Datatype recvtype, MPI_Comm comm, MPI_Request* request) {
  add(comm, "all_gather", int64_t{recvcount} * comm_size(comm) * type_bytes(recvtype), 0.0);
  return PMPI_Iallgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm, request);
}

int MPI_Alltoall(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, int recvcount,
                 MPI_Datatype recvtype, MPI_Comm comm) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
  add(comm, "all_to_all", int64_t{recvcount} * comm_size(comm) * type_bytes(recvtype), since(t0));
  return rc;
}

int MPI_Bcast(void* buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Bcast(buffer, count, datatype, root, comm);
  add(comm, "broadcast", count * type_bytes(datatype), since(t0));
  return rc;
}

int MPI_Isend(const void* buf, int count, MPI_Datatype datatype, int dest, int tag, MPI_Comm comm,
              MPI_Request* request) {
  add(comm, "send", count * type_bytes(datatype), 0.0);
  return PMPI_Isend(buf, count, datatype, dest, tag, comm, request);
}

int MPI_Send(const void* buf, int count, MPI_Datatype datatype, int dest, int tag, MPI_Comm comm) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Send(buf, count, datatype, dest, tag, comm);
  add(comm, "send", count * type_bytes(datatype), since(t0));
  return rc;
}

int MPI_Waitall(int count, MPI_Request requests[], MPI_Status statuses[]) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Waitall(count, requests, statuses);
  if (ringtrain::bench::state().counting) ringtrain::bench::state().wait_s += since(t0);
  return rc;
}

int MPI_Wait(MPI_Request* request, MPI_Status* status) {
  const auto t0 = ringtrain::bench::Clock::now();
  const int rc = PMPI_Wait(request, status);
  if (ringtrain::bench::state().counting) ringtrain::bench::state().wait_s += since(t0);
  return rc;
}

}  // extern "C"
