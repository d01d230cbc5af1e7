// The Communicator interface (src/core/communicator.h) on device memory through the GPU
// layer's NCCL: on a real device NCCL itself, on the emulated device NCCL's semantics over MPI.
// Every NCCL call is issued on the communicator's own stream (the communication stream).
//
// Ordering contract.
//   Without a compute stream (compute == nullptr): host-synchronous. all_reduce,
//   reduce_scatter, all_gather, all_to_all and broadcast return after the communication
//   stream finished; all_reduce_async, reduce_scatter_async, all_gather_async and exchange return
//   a Pending whose wait() (or destruction) blocks the host on an event recorded after the operation.
//   The caller makes sure the input data is ready (e.g. by synchronizing the stream that
//   produced it).
//   With a compute stream: no host synchronization in any operation but barrier().
//     - Inputs: every operation first records an event on `compute` at issue time and makes the
//       communication stream wait on it, so it sees everything issued on `compute` before the
//       call (the kernel that produced the data).
//     - Blocking calls (all_reduce, reduce_scatter, all_gather, all_to_all, broadcast) then
//       record an event on the communication stream and make `compute` wait on it: work issued
//       on `compute` after the call sees the result; the host does not wait.
//     - all_reduce_async, reduce_scatter_async, all_gather_async and exchange return a Pending;
//       its wait() makes `compute` wait (device side) on an event recorded after the operation, so compute work
//       issued between the call and wait() overlaps the transfer; destroying an unwaited Pending does the same.
//       Do not write a send buffer or read a receive buffer on `compute` before wait().
//     - barrier() synchronizes both streams on the host, then MPI_Barrier.
//   Buffers must outlive their transfers: with the caching device allocator
//   (caching_allocator.h, safe for the compute stream only) free a tensor used by an
//   asynchronous operation only after its Pending was waited on; the compute stream is then
//   ordered after the transfer.
// Events come from a small pool shared with the Pendings (no event creation per operation in
// steady state). A Pending may outlive its communicator; the compute stream must outlive both.
#pragma once

#include <memory>

#include <mpi.h>

#include "src/core/communicator.h"
#include "src/device/gpu.h"
#include "src/device/nccl.h"

namespace ringtrain {

// Bootstraps an NCCL communicator over `comm` (collective over it). With `stream` null the
// communicator creates and owns its own communication stream. `compute`: see the ordering
// contract above (null: host-synchronous).
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, gpu::Stream stream = nullptr,
                                                     gpu::Stream compute = nullptr);

// The stream a communicator made by make_nccl_communicator issues its work on.
gpu::Stream nccl_communicator_stream(Communicator& comm);

}  // namespace ringtrain
