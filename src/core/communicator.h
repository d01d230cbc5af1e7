// One interface for the collectives the trainer needs. Counts are elements, never bytes.
// The MPI implementation (src/core/mpi_communicator.h) works on host memory; the NCCL and
// staged-MPI implementations (GPU layer, src/device) work on device memory. The interface sits
// on the ground floor so that both can implement it. A communicator covers one group of the mesh (tp, cp, dp, ...).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <mpi.h>

#include "src/core/tensor.h"

namespace ringtrain {

enum class ReduceOp { kSum, kMax, kMin };

// A pending non-blocking operation; wait() completes it (idempotent). Destroying a pending
// operation waits for it, so buffers are never released under an in-flight transfer.
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  virtual void wait() = 0;
};
using Pending = std::unique_ptr<PendingOp>;

// One leg of a batched point-to-point exchange (a ring step sends one buffer and receives one).
struct P2POp {
  enum Kind { kSend, kRecv } kind;
  void* buffer;
  size_t count;
  int peer;  // rank within this communicator
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: buf[count] <- op over ranks.
  virtual void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) = 0;
  virtual Pending all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op) = 0;
  // send[count * size] -> recv[count]: rank r gets op over ranks of block r.
  virtual void reduce_scatter(const void* send, void* recv, size_t count, DType dtype,
                              ReduceOp op) = 0;
  // The same, returning at once: neither buffer may be touched before wait() (ZeRO-2 reduces
  // each layer's gradients while the backward of the layers below runs).
  virtual Pending reduce_scatter_async(const void* send, void* recv, size_t count, DType dtype,
                                       ReduceOp op) = 0;
  // send[count] -> recv[count * size], blocks in rank order. In place when send is this
  // rank's block of recv (recv + rank * count), as NCCL allows.
  virtual void all_gather(const void* send, void* recv, size_t count, DType dtype) = 0;
  // The same, returning at once (not in place): neither buffer may be touched before wait()
  // (ZeRO-3 gathers the next layer's weights while this one computes).
  virtual Pending all_gather_async(const void* send, void* recv, size_t count, DType dtype) = 0;
  // send[count * size] -> recv[count * size]: block j of rank i lands as block i of rank j.
  virtual void all_to_all(const void* send, void* recv, size_t count, DType dtype) = 0;
  virtual void broadcast(void* buf, size_t count, DType dtype, int root) = 0;
  // Posts every leg at once (sends and receives of one ring step grouped, so no ordering of
  // pairs can deadlock) and returns without waiting.
  virtual Pending exchange(const std::vector<P2POp>& ops, DType dtype) = 0;
  virtual void barrier() = 0;
};

// The MPI type of a dtype (host collectives; a fault for the half types, which only the GPU
// layer's communicators carry).
MPI_Datatype mpi_dtype(DType dtype);

}  // namespace ringtrain
