// Emulated NCCL: NCCL's semantics (see src/device/nccl.h) over MPI on host memory.
// Reductions gather every rank's contribution and reduce in rank order (fp32 for bf16/f16,
// one rounding at the end), so every rank gets bitwise the same result, as with NCCL.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <chrono>
#include <climits>
#include <functional>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "src/core/error.h"
#include "src/device/emu/emu_internal.h"
#include "src/device/nccl.h"

namespace ringtrain::gpu::nccl {

struct CommImpl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  bool broken = false;
};

namespace {

constexpr int kP2PTag = 0x4e43;
thread_local std::string tl_detail;
double g_timeout_s = -1.0;

double timeout_s() {
  if (g_timeout_s < 0.0) {
    const char* e = std::getenv("RINGTRAIN_EMU_NCCL_TIMEOUT_S");
    g_timeout_s = e ? std::strtod(e, nullptr) : 20.0;
  }
  return g_timeout_s;
}

Result fail(Result r, const std::string& detail) {
  tl_detail = detail;
  return r;
}

enum class Kind { kAllReduce, kReduceScatter, kAllGather, kBroadcast, kSend, kRecv };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kAllReduce: return "all_reduce";
    case Kind::kReduceScatter: return "reduce_scatter";
    case Kind::kAllGather: return "all_gather";
    case Kind::kBroadcast: return "broadcast";
    case Kind::kSend: return "send";
    case Kind::kRecv: return "recv";
  }
  return "?";
}

struct Op {
  Kind kind;
  const void* send;
  void* recv;
  size_t count;  // all_reduce/broadcast/send/recv: count; reduce_scatter: recv count; all_gather: send count
  DType dtype;
  RedOp op;
  int root_or_peer;
  Comm comm;
  Stream stream;
};

thread_local int tl_group_depth = 0;
thread_local std::vector<Op> tl_group;

bool reducible(DType t) { return t != DType::kU16; }

template <typename T, typename Acc>
void reduce_typed(const char* blocks, int nblocks, size_t count, RedOp op, void* out) {
  const T* b = reinterpret_cast<const T*>(blocks);
  T* o = static_cast<T*>(out);
  auto widen = [](T v) -> Acc {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
    else if constexpr (std::is_same_v<T, __half>) return __half2float(v);
    else return static_cast<Acc>(v);
  };
  for (size_t i = 0; i < count; ++i) {
    Acc acc = widen(b[i]);
    for (int p = 1; p < nblocks; ++p) {
      const Acc x = widen(b[static_cast<size_t>(p) * count + i]);
      switch (op) {
        case RedOp::kSum: acc = acc + x; break;
        case RedOp::kProd: acc = acc * x; break;
        case RedOp::kMax: acc = x > acc ? x : acc; break;
        case RedOp::kMin: acc = x < acc ? x : acc; break;
      }
    }
    if constexpr (std::is_same_v<T, __nv_bfloat16>) o[i] = __float2bfloat16(acc);
    else if constexpr (std::is_same_v<T, __half>) o[i] = __float2half(acc);
    else o[i] = static_cast<T>(acc);
  }
}

void reduce_blocks(const char* blocks, int nblocks, size_t count, DType t, RedOp op, void* out) {
  switch (t) {
    case DType::kF32: reduce_typed<float, float>(blocks, nblocks, count, op, out); break;
    case DType::kF64: reduce_typed<double, double>(blocks, nblocks, count, op, out); break;
    case DType::kBF16: reduce_typed<__nv_bfloat16, float>(blocks, nblocks, count, op, out); break;
    case DType::kF16: reduce_typed<__half, float>(blocks, nblocks, count, op, out); break;
    case DType::kI32: reduce_typed<int32_t, int64_t>(blocks, nblocks, count, op, out); break;
    case DType::kI64: reduce_typed<int64_t, int64_t>(blocks, nblocks, count, op, out); break;
    case DType::kU32: reduce_typed<uint32_t, uint64_t>(blocks, nblocks, count, op, out); break;
    case DType::kU16: break;
  }
}

bool overlaps(const void* a, size_t an, const void* b, size_t bn) {
  const char* x = static_cast<const char*>(a);
  const char* y = static_cast<const char*>(b);
  return an && bn && x < y + bn && y < x + an;
}

Result check_buffer(const void* p, size_t bytes, const char* what, const Op& op) {
  if (bytes == 0) return Result::kSuccess;
  std::string why;
  if (!emu::device_range_ok(p, bytes, &why))
    return fail(Result::kInvalidArgument, std::string("nccl ") + kind_name(op.kind) + ": " + what + " is not " +
                                              std::to_string(op.count) + " elements (" + std::to_string(bytes) +
                                              " bytes) of device memory: " + why);
  return Result::kSuccess;
}

// Validates an op at the call, as NCCL does before enqueuing it.
Result validate(const Op& op) {
  if (!op.comm) return fail(Result::kInvalidArgument, "null communicator");
  if (op.comm->broken)
    return fail(Result::kInvalidUsage, "communicator is in an error state after an earlier failure; destroy it");
  const size_t es = dtype_size(op.dtype), P = static_cast<size_t>(op.comm->size);
  const size_t n = op.count * es;
  const bool reduction = op.kind == Kind::kAllReduce || op.kind == Kind::kReduceScatter;
  if (reduction && !reducible(op.dtype))
    return fail(Result::kInvalidArgument, std::string("nccl has no reduction for ") + dtype_name(op.dtype));
  if (n * P > static_cast<size_t>(INT_MAX))
    return fail(Result::kInvalidArgument, "emulated nccl: message above 2 GiB (MPI int counts)");
  Result r = Result::kSuccess;
  switch (op.kind) {
    case Kind::kAllReduce:
    case Kind::kBroadcast:
      if ((r = check_buffer(op.recv, n, "recvbuff", op)) != Result::kSuccess) return r;
      if (op.kind == Kind::kAllReduce || op.comm->rank == op.root_or_peer)
        if ((r = check_buffer(op.send, n, "sendbuff", op)) != Result::kSuccess) return r;
      if (op.send != op.recv && overlaps(op.send, n, op.recv, n))
        return fail(Result::kInvalidArgument, std::string(kind_name(op.kind)) + ": sendbuff and recvbuff overlap without being equal");
      if (op.kind == Kind::kBroadcast && (op.root_or_peer < 0 || op.root_or_peer >= op.comm->size))
        return fail(Result::kInvalidArgument, "broadcast root out of range");
      break;
    case Kind::kReduceScatter:
      if ((r = check_buffer(op.send, n * P, "sendbuff (recvcount * nranks)", op)) != Result::kSuccess) return r;
      if ((r = check_buffer(op.recv, n, "recvbuff", op)) != Result::kSuccess) return r;
      if (overlaps(op.send, n * P, op.recv, n) &&
          static_cast<const char*>(op.send) + n * static_cast<size_t>(op.comm->rank) != op.recv)
        return fail(Result::kInvalidArgument, "reduce_scatter in place needs recvbuff == sendbuff + rank * recvcount");
      break;
    case Kind::kAllGather:
      if ((r = check_buffer(op.send, n, "sendbuff", op)) != Result::kSuccess) return r;
      if ((r = check_buffer(op.recv, n * P, "recvbuff (sendcount * nranks)", op)) != Result::kSuccess) return r;
      if (overlaps(op.send, n, op.recv, n * P) &&
          static_cast<const char*>(op.recv) + n * static_cast<size_t>(op.comm->rank) != op.send)
        return fail(Result::kInvalidArgument, "all_gather in place needs sendbuff == recvbuff + rank * sendcount");
      break;
    case Kind::kSend:
    case Kind::kRecv:
      if (op.root_or_peer < 0 || op.root_or_peer >= op.comm->size)
        return fail(Result::kInvalidArgument, std::string(kind_name(op.kind)) + ": peer " + std::to_string(op.root_or_peer) + " out of range");
      if ((r = check_buffer(op.kind == Kind::kSend ? op.send : op.recv, n, "buffer", op)) != Result::kSuccess) return r;
      break;
  }
  return Result::kSuccess;
}

Result mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Result::kSuccess;
  return fail(Result::kSystemError, std::string("MPI failed in emulated nccl ") + what);
}

Result run_collective(const Op& op) {
  const int P = op.comm->size, me = op.comm->rank;
  const size_t n = op.count * dtype_size(op.dtype);
  const int ni = static_cast<int>(n);
  MPI_Comm c = op.comm->comm;
  switch (op.kind) {
    case Kind::kAllReduce: {
      std::vector<char> all(n * static_cast<size_t>(P));
      Result r = mpi(MPI_Allgather(op.send, ni, MPI_BYTE, all.data(), ni, MPI_BYTE, c), "all_reduce");
      if (r != Result::kSuccess) return r;
      reduce_blocks(all.data(), P, op.count, op.dtype, op.op, op.recv);
      return Result::kSuccess;
    }
    case Kind::kReduceScatter: {
      std::vector<char> mine(n * static_cast<size_t>(P));
      Result r = mpi(MPI_Alltoall(op.send, ni, MPI_BYTE, mine.data(), ni, MPI_BYTE, c), "reduce_scatter");
      if (r != Result::kSuccess) return r;
      reduce_blocks(mine.data(), P, op.count, op.dtype, op.op, op.recv);
      return Result::kSuccess;
    }
    case Kind::kAllGather:
      if (static_cast<const char*>(op.recv) + n * static_cast<size_t>(me) == op.send)
        return mpi(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, op.recv, ni, MPI_BYTE, c), "all_gather");
      return mpi(MPI_Allgather(op.send, ni, MPI_BYTE, op.recv, ni, MPI_BYTE, c), "all_gather");
    case Kind::kBroadcast:
      if (me == op.root_or_peer && op.send != op.recv) std::memmove(op.recv, op.send, n);
      return mpi(MPI_Bcast(op.recv, ni, MPI_BYTE, op.root_or_peer, c), "broadcast");
    case Kind::kSend:
    case Kind::kRecv: break;
  }
  return Result::kInternalError;
}

// An ungrouped send/recv: blocks until the peer's matching call, like NCCL's, but reports a
// wait longer than the timeout as the deadlock it would be on a GPU.
Result run_ungrouped_p2p(const Op& op) {
  const int ni = static_cast<int>(op.count * dtype_size(op.dtype));
  MPI_Request req;
  int rc = op.kind == Kind::kSend
               ? MPI_Issend(op.send, ni, MPI_BYTE, op.root_or_peer, kP2PTag, op.comm->comm, &req)
               : MPI_Irecv(op.recv, ni, MPI_BYTE, op.root_or_peer, kP2PTag, op.comm->comm, &req);
  if (rc != MPI_SUCCESS) return mpi(rc, kind_name(op.kind));
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  while (true) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return Result::kSuccess;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > timeout_s()) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  MPI_Cancel(&req);
  MPI_Request_free(&req);
  op.comm->broken = true;
  return fail(Result::kInvalidUsage,
              std::string("ungrouped nccl ") + kind_name(op.kind) + (op.kind == Kind::kSend ? " to " : " from ") +
                  "peer " + std::to_string(op.root_or_peer) + " found no matching call after " +
                  std::to_string(timeout_s()) +
                  " s: outside group_start/group_end NCCL's send blocks until the peer receives, so a ring of "
                  "ungrouped send/recv deadlocks on GPUs; group them");
}

const char* result_text(Result r);

// Runs `fn` now (eager streams, or the default stream) and returns its result, or leaves it
// on the stream (deferred mode), where a failure becomes a fault when the stream runs.
Result issue(Stream stream, std::function<Result()> fn) {
  if (!stream || current_stream_mode() == StreamMode::kEager) return fn();
  emu::enqueue(stream, [fn] {
    const Result r = fn();
    if (r != Result::kSuccess) ringtrain::fault("emulated nccl (deferred on its stream): ", result_text(r), ": ", tl_detail);
  });
  return Result::kSuccess;
}

Result enqueue(const Op& op) {
  Result r = validate(op);
  if (r != Result::kSuccess) return r;
  if (tl_group_depth > 0) {
    tl_group.push_back(op);
    return Result::kSuccess;
  }
  // Collectives carry their dtype and payload (the whole buffer: a reduce-scatter's input, an
  // all-gather's output), which the byte tests add up.
  const bool p2p = op.kind == Kind::kSend || op.kind == Kind::kRecv;
  const bool whole = op.kind == Kind::kReduceScatter || op.kind == Kind::kAllGather;
  const size_t payload = op.count * dtype_size(op.dtype) * (whole ? static_cast<size_t>(op.comm->size) : 1);
  trace_note(op.stream, std::string("nccl ") + kind_name(op.kind) +
                            (p2p ? " peer " + std::to_string(op.root_or_peer)
                                 : std::string(" ") + dtype_name(op.dtype) + " " + std::to_string(payload) + " B"));
  return issue(op.stream, [op] {
    if (op.kind == Kind::kSend || op.kind == Kind::kRecv) return run_ungrouped_p2p(op);
    const Result res = run_collective(op);
    if (res != Result::kSuccess) op.comm->broken = true;
    return res;
  });
}

}  // namespace

namespace {
const char* result_text(Result r) { return result_name(r); }
}  // namespace

const char* result_name(Result r) {
  switch (r) {
    case Result::kSuccess: return "ncclSuccess";
    case Result::kUnhandledCudaError: return "ncclUnhandledCudaError";
    case Result::kSystemError: return "ncclSystemError";
    case Result::kInternalError: return "ncclInternalError";
    case Result::kInvalidArgument: return "ncclInvalidArgument";
    case Result::kInvalidUsage: return "ncclInvalidUsage";
    case Result::kRemoteError: return "ncclRemoteError";
    case Result::kInProgress: return "ncclInProgress";
  }
  return "ncclResult(unknown)";
}

std::string last_error_detail() { return tl_detail; }

void nccl_failed(Result r, const char* call, const char* file, int line) {
  const std::string d = last_error_detail();
  ringtrain::fault(call, " failed: ", result_name(r), d.empty() ? "" : " (", d, d.empty() ? "" : ")", " at ", file,
                   ":", line);
}

void set_p2p_timeout_s(double seconds) { g_timeout_s = seconds; }

Result comm_init_from_mpi(Comm* comm, MPI_Comm mpi_comm) {
  if (!comm) return fail(Result::kInvalidArgument, "null comm pointer");
  auto* c = new CommImpl();
  if (MPI_Comm_dup(mpi_comm, &c->comm) != MPI_SUCCESS) {
    delete c;
    return fail(Result::kSystemError, "MPI_Comm_dup failed");
  }
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->size);
  *comm = c;
  return Result::kSuccess;
}

Result comm_destroy(Comm comm) {
  if (!comm) return Result::kSuccess;
  if (tl_group_depth > 0) return fail(Result::kInvalidUsage, "comm_destroy inside a group");
  MPI_Comm_free(&comm->comm);
  delete comm;
  return Result::kSuccess;
}
Result comm_count(Comm comm, int* count) {
  if (!comm) return fail(Result::kInvalidArgument, "null communicator");
  *count = comm->size;
  return Result::kSuccess;
}
Result comm_user_rank(Comm comm, int* rank) {
  if (!comm) return fail(Result::kInvalidArgument, "null communicator");
  *rank = comm->rank;
  return Result::kSuccess;
}

Result all_reduce(const void* send, void* recv, size_t count, DType dtype, RedOp op, Comm comm, Stream stream) {
  return enqueue(Op{Kind::kAllReduce, send, recv, count, dtype, op, 0, comm, stream});
}
Result reduce_scatter(const void* send, void* recv, size_t recv_count, DType dtype, RedOp op, Comm comm,
                      Stream stream) {
  return enqueue(Op{Kind::kReduceScatter, send, recv, recv_count, dtype, op, 0, comm, stream});
}
Result all_gather(const void* send, void* recv, size_t send_count, DType dtype, Comm comm, Stream stream) {
  return enqueue(Op{Kind::kAllGather, send, recv, send_count, dtype, RedOp::kSum, 0, comm, stream});
}
Result broadcast(const void* send, void* recv, size_t count, DType dtype, int root, Comm comm, Stream stream) {
  return enqueue(Op{Kind::kBroadcast, send, recv, count, dtype, RedOp::kSum, root, comm, stream});
}
Result send(const void* buf, size_t count, DType dtype, int peer, Comm comm, Stream stream) {
  return enqueue(Op{Kind::kSend, buf, nullptr, count, dtype, RedOp::kSum, peer, comm, stream});
}
Result recv(void* buf, size_t count, DType dtype, int peer, Comm comm, Stream stream) {
  return enqueue(Op{Kind::kRecv, nullptr, buf, count, dtype, RedOp::kSum, peer, comm, stream});
}

namespace {
// Posts every point-to-point leg at once (so no order of pairs can deadlock), then runs the
// collectives in issue order, then completes the legs.
Result run_group(const std::vector<Op>& ops) {
  std::vector<MPI_Request> reqs;
  Result r = Result::kSuccess;
  for (const Op& op : ops) {
    if (op.kind != Kind::kSend && op.kind != Kind::kRecv) continue;
    const int ni = static_cast<int>(op.count * dtype_size(op.dtype));
    MPI_Request req;
    const int rc = op.kind == Kind::kSend
                       ? MPI_Isend(op.send, ni, MPI_BYTE, op.root_or_peer, kP2PTag, op.comm->comm, &req)
                       : MPI_Irecv(op.recv, ni, MPI_BYTE, op.root_or_peer, kP2PTag, op.comm->comm, &req);
    if (rc != MPI_SUCCESS) return mpi(rc, kind_name(op.kind));
    reqs.push_back(req);
  }
  for (const Op& op : ops) {
    if (op.kind == Kind::kSend || op.kind == Kind::kRecv) continue;
    Result rc = run_collective(op);
    if (rc != Result::kSuccess && r == Result::kSuccess) r = rc;
  }
  if (!reqs.empty()) {
    Result rc = mpi(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE), "group_end");
    if (rc != Result::kSuccess && r == Result::kSuccess) r = rc;
  }
  return r;
}
}  // namespace

Result group_start() {
  ++tl_group_depth;
  return Result::kSuccess;
}

Result group_end() {
  if (tl_group_depth == 0) return fail(Result::kInvalidUsage, "group_end without group_start");
  if (--tl_group_depth > 0) return Result::kSuccess;
  std::vector<Op> ops = std::move(tl_group);
  tl_group.clear();
  if (ops.empty()) return Result::kSuccess;
  for (const Op& op : ops)
    trace_note(op.stream, std::string("nccl ") + kind_name(op.kind) +
                              (op.kind == Kind::kSend || op.kind == Kind::kRecv ? " peer " + std::to_string(op.root_or_peer) : ""));
  // The group runs as one unit on its first operation's stream.
  return issue(ops.front().stream, [ops] { return run_group(ops); });
}


}  // namespace ringtrain::gpu::nccl
