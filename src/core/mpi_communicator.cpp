// Communicator over MPI on host memory.
#include "src/core/mpi_communicator.h"

#include <vector>

#include "src/core/error.h"

namespace ringtrain {
namespace {

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

// MPI counts are int: larger buffers would need derived types; refuse rather than truncate.
int checked_count(size_t count) {
  RT_CHECK(count <= static_cast<size_t>(INT32_MAX), "MPI count ", count, " exceeds 2^31-1 elements");
  return static_cast<int>(count);
}

class MpiPending final : public PendingOp {
 public:
  explicit MpiPending(std::vector<MPI_Request> reqs) : reqs_(std::move(reqs)) {}
  ~MpiPending() override {
    if (!reqs_.empty()) MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
  }
  void wait() override {
    if (reqs_.empty()) return;
    MPI_CHECK(MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE));
    reqs_.clear();
  }

 private:
  std::vector<MPI_Request> reqs_;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override {
    if (size_ == 1 || count == 0) return;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, checked_count(count), mpi_dtype(dtype), mpi_op(op), comm_));
  }
  Pending all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op) override {
    std::vector<MPI_Request> reqs;
    if (size_ > 1 && count > 0) {
      reqs.emplace_back();
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, checked_count(count), mpi_dtype(dtype), mpi_op(op),
                               comm_, &reqs.back()));
    }
    return std::make_unique<MpiPending>(std::move(reqs));
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    MPI_CHECK(MPI_Reduce_scatter_block(send, recv, checked_count(count), mpi_dtype(dtype), mpi_op(op), comm_));
  }
  Pending reduce_scatter_async(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    std::vector<MPI_Request> reqs(1);
    MPI_CHECK(MPI_Ireduce_scatter_block(send, recv, checked_count(count), mpi_dtype(dtype), mpi_op(op), comm_,
                                        &reqs.back()));
    return std::make_unique<MpiPending>(std::move(reqs));
  }
  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    // NCCL's in-place form (send is this rank's block of recv) is MPI_IN_PLACE in MPI.
    if (send == static_cast<const char*>(recv) + static_cast<size_t>(rank_) * count * dtype_size(dtype))
      send = MPI_IN_PLACE;
    MPI_CHECK(MPI_Allgather(send, checked_count(count), mpi_dtype(dtype), recv, checked_count(count),
                            mpi_dtype(dtype), comm_));
  }
  Pending all_gather_async(const void* send, void* recv, size_t count, DType dtype) override {
    std::vector<MPI_Request> reqs(1);
    MPI_CHECK(MPI_Iallgather(send, checked_count(count), mpi_dtype(dtype), recv, checked_count(count), mpi_dtype(dtype),
                             comm_, &reqs.back()));
    return std::make_unique<MpiPending>(std::move(reqs));
  }
  void all_to_all(const void* send, void* recv, size_t count, DType dtype) override {
    MPI_CHECK(MPI_Alltoall(send, checked_count(count), mpi_dtype(dtype), recv, checked_count(count),
                           mpi_dtype(dtype), comm_));
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    if (size_ == 1 || count == 0) return;
    MPI_CHECK(MPI_Bcast(buf, checked_count(count), mpi_dtype(dtype), root, comm_));
  }
  Pending exchange(const std::vector<P2POp>& ops, DType dtype) override {
    // Receives are posted first so an eager send never waits on an unposted receive.
    std::vector<MPI_Request> reqs;
    reqs.reserve(ops.size());
    for (int pass = 0; pass < 2; ++pass) {
      for (const P2POp& op : ops) {
        if ((pass == 0) != (op.kind == P2POp::kRecv)) continue;
        RT_CHECK(op.peer >= 0 && op.peer < size_, "peer ", op.peer, " outside communicator of ", size_);
        reqs.emplace_back();
        if (op.kind == P2POp::kRecv)
          MPI_CHECK(MPI_Irecv(op.buffer, checked_count(op.count), mpi_dtype(dtype), op.peer, kTag, comm_, &reqs.back()));
        else
          MPI_CHECK(MPI_Isend(op.buffer, checked_count(op.count), mpi_dtype(dtype), op.peer, kTag, comm_, &reqs.back()));
      }
    }
    return std::make_unique<MpiPending>(std::move(reqs));
  }
  void barrier() override { MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  static constexpr int kTag = 7;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) {
  return std::make_unique<MpiCommunicator>(comm);
}

}  // namespace ringtrain
