// The staged-MPI communicator: the Communicator interface on device memory without NCCL, for
// several processes sharing one GPU (NCCL refuses two ranks on one device) or a machine
// without NCCL. Each operation synchronizes the compute stream, copies the device data into
// pinned host staging buffers, runs the MPI operation on them (src/core/mpi_communicator.cpp)
// and copies the results back to the device on the compute stream.
//
// Ordering contract: operations see everything issued on `compute` before the call (the host
// synchronizes it); results are copied back with gpu::memcpy_async on `compute`, so work issued
// there after the call (after Pending::wait() for the asynchronous ones) sees them, without a
// second host synchronization. exchange() stages its sends and posts the MPI non-blocking
// operations at once; Pending::wait() (or destroying the Pending) completes them and copies the
// received data to the device buffers. all_reduce_async, reduce_scatter_async (fp32) and
// all_gather_async likewise. barrier() synchronizes `compute` and the ranks.
//
// Staging buffers are pinned and reused (power-of-two size classes): after a first run of a
// step, steady state allocates nothing (staged_mpi_host_allocations stops moving). bf16/f16
// reductions run in fp32 on the host, rounded once on the way back; non-reducing operations
// move the bytes.
// `compute` may be null (the legacy default stream).
#pragma once

#include <cstdint>
#include <memory>

#include <mpi.h>

#include "src/core/communicator.h"
#include "src/device/gpu.h"

namespace ringtrain {

// Collective over `comm` (duplicated; the caller keeps ownership of `comm`).
std::unique_ptr<Communicator> make_staged_mpi_communicator(MPI_Comm comm, gpu::Stream compute);

// Pinned host allocations the communicator made so far (a steady-state loop adds none).
int64_t staged_mpi_host_allocations(Communicator& comm);

}  // namespace ringtrain
