// The host-memory Communicator (src/core/communicator.h) over MPI: what the CPU backend's
// tensors and every host scalar of the trainer travel on.
#pragma once

#include <memory>

#include <mpi.h>

#include "src/core/communicator.h"

namespace ringtrain {

// Over an MPI communicator (not owned).
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

}  // namespace ringtrain
