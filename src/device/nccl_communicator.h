// The Communicator interface (parallel/communicator.h) on device memory through the GPU
// layer's NCCL: on a real device NCCL itself, on the emulated device NCCL's semantics over MPI.
// Collectives run on the communicator's own stream; the synchronous calls wait for it, the
// asynchronous ones (all_reduce_async, exchange) return a Pending that waits on an event.
#pragma once

#include <memory>

#include <mpi.h>

#include "parallel/communicator.h"
#include "src/device/gpu.h"
#include "src/device/nccl.h"

namespace ringtrain {

// Bootstraps an NCCL communicator over `comm` (collective over it). With `stream` null the
// communicator creates and owns its own stream.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, gpu::Stream stream = nullptr);

// The stream a communicator made by make_nccl_communicator issues its work on.
gpu::Stream nccl_communicator_stream(Communicator& comm);

}  // namespace ringtrain
