#include "src/core/communicator.h"

#include "src/core/error.h"

namespace ringtrain {

MPI_Datatype mpi_dtype(DType dtype) {
  switch (dtype) {
    case DType::kF32: return MPI_FLOAT;
    case DType::kF64: return MPI_DOUBLE;
    case DType::kI32: return MPI_INT32_T;
    case DType::kI64: return MPI_INT64_T;
    case DType::kU16: return MPI_UINT16_T;
    case DType::kU32: return MPI_UINT32_T;
    case DType::kBF16:
    case DType::kF16: break;
  }
  fault("MPI communicator: no MPI type for ", dtype_name(dtype),
        " (host collectives run in fp32; half types go through the GPU layer)");
}

}  // namespace ringtrain
