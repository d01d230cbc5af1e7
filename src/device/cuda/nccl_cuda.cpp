// The GPU layer's NCCL on a real device: NCCL itself, bootstrapped over MPI.
#include <nccl.h>

#include <string>

#include "src/core/error.h"
#include "src/device/nccl.h"

namespace ringtrain::gpu::nccl {

struct CommImpl {
  ncclComm_t comm = nullptr;
};

namespace {
thread_local std::string tl_detail;
Result conv(ncclResult_t r) {
  if (r != ncclSuccess) tl_detail = ncclGetErrorString(r);
  return static_cast<Result>(r);
}
// NCCL has no 16-bit unsigned type: such buffers move as bytes (never reduced).
bool nccl_type(DType t, ncclDataType_t* out, size_t* scale) {
  *scale = 1;
  switch (t) {
    case DType::kF32: *out = ncclFloat32; return true;
    case DType::kF64: *out = ncclFloat64; return true;
    case DType::kBF16: *out = ncclBfloat16; return true;
    case DType::kF16: *out = ncclFloat16; return true;
    case DType::kI32: *out = ncclInt32; return true;
    case DType::kI64: *out = ncclInt64; return true;
    case DType::kU32: *out = ncclUint32; return true;
    case DType::kU16: *out = ncclUint8; *scale = 2; return false;
  }
  return false;
}
ncclRedOp_t nccl_op(RedOp op) {
  switch (op) {
    case RedOp::kSum: return ncclSum;
    case RedOp::kProd: return ncclProd;
    case RedOp::kMax: return ncclMax;
    case RedOp::kMin: return ncclMin;
  }
  return ncclSum;
}
}  // namespace

static_assert(static_cast<int>(Result::kInvalidUsage) == ncclInvalidUsage);

const char* result_name(Result r) { return ncclGetErrorString(static_cast<ncclResult_t>(r)); }
std::string last_error_detail() { return tl_detail; }
void nccl_failed(Result r, const char* call, const char* file, int line) {
  ringtrain::fault(call, " failed: ", result_name(r), " at ", file, ":", line);
}
void set_p2p_timeout_s(double) {}

Result comm_init_from_mpi(Comm* comm, MPI_Comm mpi_comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(mpi_comm, &rank);
  MPI_Comm_size(mpi_comm, &size);
  ncclUniqueId id;
  if (rank == 0) {
    const Result r = conv(ncclGetUniqueId(&id));
    if (r != Result::kSuccess) return r;
  }
  if (MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi_comm) != MPI_SUCCESS) return Result::kSystemError;
  auto* c = new CommImpl();
  const Result r = conv(ncclCommInitRank(&c->comm, size, id, rank));
  if (r != Result::kSuccess) {
    delete c;
    return r;
  }
  *comm = c;
  return Result::kSuccess;
}
Result comm_destroy(Comm comm) {
  if (!comm) return Result::kSuccess;
  const Result r = conv(ncclCommDestroy(comm->comm));
  delete comm;
  return r;
}
Result comm_count(Comm comm, int* count) { return conv(ncclCommCount(comm->comm, count)); }
Result comm_user_rank(Comm comm, int* rank) { return conv(ncclCommUserRank(comm->comm, rank)); }

Result all_reduce(const void* send, void* recv, size_t count, DType dtype, RedOp op, Comm comm, Stream stream) {
  ncclDataType_t t;
  size_t scale;
  if (!nccl_type(dtype, &t, &scale)) return Result::kInvalidArgument;
  return conv(ncclAllReduce(send, recv, count, t, nccl_op(op), comm->comm, stream));
}
Result reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, RedOp op, Comm comm, Stream stream) {
  ncclDataType_t t;
  size_t scale;
  if (!nccl_type(dtype, &t, &scale)) return Result::kInvalidArgument;
  return conv(ncclReduceScatter(send, recv, recv_count, t, nccl_op(op), comm->comm, stream));
}
Result all_gather(const void* send, void* recv, size_t send_count, DType dtype, Comm comm, Stream stream) {
  ncclDataType_t t;
  size_t scale;
  nccl_type(dtype, &t, &scale);
  return conv(ncclAllGather(send, recv, send_count * scale, t, comm->comm, stream));
}
Result broadcast(const void* send, void* recv, size_t count, DType dtype, int root, Comm comm, Stream stream) {
  ncclDataType_t t;
  size_t scale;
  nccl_type(dtype, &t, &scale);
  return conv(ncclBroadcast(send, recv, count * scale, t, root, comm->comm, stream));
}
Result send(const void* buf, size_t count, DType dtype, int peer, Comm comm, Stream stream) {
  ncclDataType_t t;
  size_t scale;
  nccl_type(dtype, &t, &scale);
  return conv(ncclSend(buf, count * scale, t, peer, comm->comm, stream));
}
Result recv(void* buf, size_t count, DType dtype, int peer, Comm comm, Stream stream) {
  ncclDataType_t t;
  size_t scale;
  nccl_type(dtype, &t, &scale);
  return conv(ncclRecv(buf, count * scale, t, peer, comm->comm, stream));
}
Result group_start() { return conv(ncclGroupStart()); }
Result group_end() { return conv(ncclGroupEnd()); }

}  // namespace ringtrain::gpu::nccl
