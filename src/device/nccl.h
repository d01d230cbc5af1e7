// The GPU layer's NCCL: the collectives and point-to-point calls ringtrain makes, on device
// memory and a stream. cuda build: NCCL itself. Emulation build: the same semantics over MPI
// on host memory (src/device/emu/nccl_emu.cpp):
//   - counts are elements, never bytes; every buffer must be `count` elements of device memory;
//   - in-place use only as NCCL allows it (all_reduce/broadcast: send == recv; reduce_scatter:
//     send + rank * count == recv; all_gather: recv + rank * count == send), other overlaps fail;
//   - group_start/group_end: the calls between them are issued together at group_end, so a ring
//     step's sends and receives cannot deadlock; send/recv pair in issue order per peer;
//   - a send or recv outside a group blocks until its peer posts the matching call, as NCCL's
//     does; a pattern in which every rank waits (a ring of ungrouped sends) fails with
//     kInvalidUsage after RINGTRAIN_EMU_NCCL_TIMEOUT_S seconds (default 20) instead of hanging.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <string>

#include "src/core/tensor.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu::nccl {

// NCCL's result codes (same values as ncclResult_t).
enum class Result : int {
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,
  kInProgress = 7,
};
const char* result_name(Result r);
// What the layer knows beyond the code about the last failure on this thread.
std::string last_error_detail();

enum class RedOp { kSum, kProd, kMax, kMin };

struct CommImpl;
using Comm = CommImpl*;

// Creates one NCCL communicator over the processes of `mpi_comm` (collective over it): rank 0
// makes the unique id, MPI broadcasts it, every rank joins with its MPI rank.
Result comm_init_from_mpi(Comm* comm, MPI_Comm mpi_comm);
Result comm_destroy(Comm comm);
Result comm_count(Comm comm, int* count);
Result comm_user_rank(Comm comm, int* rank);

Result all_reduce(const void* send, void* recv, size_t count, DType dtype, RedOp op, Comm comm, Stream stream);
// send[recv_count * nranks] -> recv[recv_count]: rank r gets op over ranks of block r.
Result reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, RedOp op, Comm comm,
                      Stream stream);
// send[send_count] -> recv[send_count * nranks] in rank order.
Result all_gather(const void* send, void* recv, size_t send_count, DType dtype, Comm comm, Stream stream);
Result broadcast(const void* send, void* recv, size_t count, DType dtype, int root, Comm comm, Stream stream);
Result send(const void* buf, size_t count, DType dtype, int peer, Comm comm, Stream stream);
Result recv(void* buf, size_t count, DType dtype, int peer, Comm comm, Stream stream);
Result group_start();
Result group_end();

// Emulation only (no effect on a real device): seconds an ungrouped send/recv may wait for its
// peer before it is reported as a deadlock.
void set_p2p_timeout_s(double seconds);

[[noreturn]] void nccl_failed(Result r, const char* call, const char* file, int line);

}  // namespace ringtrain::gpu::nccl

#define NCCL_CHECK(call)                                                          \
  do {                                                                            \
    ::ringtrain::gpu::nccl::Result rt_nccl_r_ = (call);                           \
    if (rt_nccl_r_ != ::ringtrain::gpu::nccl::Result::kSuccess)                   \
      ::ringtrain::gpu::nccl::nccl_failed(rt_nccl_r_, #call, __FILE__, __LINE__); \
  } while (0)
