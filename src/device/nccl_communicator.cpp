// NcclCommunicator: Communicator over the GPU layer's NCCL (device pointers, counts in elements).
#include "src/device/nccl_communicator.h"

#include <vector>

#include "src/core/error.h"

namespace ringtrain {

namespace {

gpu::nccl::RedOp red_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return gpu::nccl::RedOp::kSum;
    case ReduceOp::kMax: return gpu::nccl::RedOp::kMax;
    case ReduceOp::kMin: return gpu::nccl::RedOp::kMin;
  }
  return gpu::nccl::RedOp::kSum;
}

// Waits on an event recorded after the work on the communicator's stream.
class EventPending final : public PendingOp {
 public:
  explicit EventPending(gpu::Stream stream) {
    CUDA_CHECK(gpu::event_create(&event_));
    CUDA_CHECK(gpu::event_record(event_, stream));
  }
  ~EventPending() override {
    if (event_) {
      gpu::event_synchronize(event_);
      gpu::event_destroy(event_);
    }
  }
  void wait() override {
    if (!event_) return;
    CUDA_CHECK(gpu::event_synchronize(event_));
    CUDA_CHECK(gpu::event_destroy(event_));
    event_ = nullptr;
  }

 private:
  gpu::Event event_ = nullptr;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, gpu::Stream stream) : stream_(stream) {
    MPI_CHECK(MPI_Comm_dup(comm, &mpi_));
    if (!stream_) {
      CUDA_CHECK(gpu::stream_create(&stream_));
      own_stream_ = true;
    }
    NCCL_CHECK(gpu::nccl::comm_init_from_mpi(&comm_, mpi_));
    NCCL_CHECK(gpu::nccl::comm_user_rank(comm_, &rank_));
    NCCL_CHECK(gpu::nccl::comm_count(comm_, &size_));
  }
  ~NcclCommunicator() override {
    gpu::stream_synchronize(stream_);
    gpu::nccl::comm_destroy(comm_);
    if (own_stream_) gpu::stream_destroy(stream_);
    MPI_Comm_free(&mpi_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  gpu::Stream stream() const { return stream_; }

  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override {
    all_reduce_async(buf, count, dtype, op)->wait();
  }
  Pending all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op) override {
    if (count > 0) NCCL_CHECK(gpu::nccl::all_reduce(buf, buf, count, dtype, red_op(op), comm_, stream_));
    return std::make_unique<EventPending>(stream_);
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    NCCL_CHECK(gpu::nccl::reduce_scatter(send, recv, count, dtype, red_op(op), comm_, stream_));
    CUDA_CHECK(gpu::stream_synchronize(stream_));
  }
  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    NCCL_CHECK(gpu::nccl::all_gather(send, recv, count, dtype, comm_, stream_));
    CUDA_CHECK(gpu::stream_synchronize(stream_));
  }
  void all_to_all(const void* send, void* recv, size_t count, DType dtype) override {
    // NCCL has no all-to-all: one group of sends and receives, block j to rank j.
    const size_t bytes = count * dtype_size(dtype);
    NCCL_CHECK(gpu::nccl::group_start());
    for (int peer = 0; peer < size_; ++peer) {
      const char* s = static_cast<const char*>(send) + bytes * static_cast<size_t>(peer);
      char* r = static_cast<char*>(recv) + bytes * static_cast<size_t>(peer);
      NCCL_CHECK(gpu::nccl::send(s, count, dtype, peer, comm_, stream_));
      NCCL_CHECK(gpu::nccl::recv(r, count, dtype, peer, comm_, stream_));
    }
    NCCL_CHECK(gpu::nccl::group_end());
    CUDA_CHECK(gpu::stream_synchronize(stream_));
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    NCCL_CHECK(gpu::nccl::broadcast(buf, buf, count, dtype, root, comm_, stream_));
    CUDA_CHECK(gpu::stream_synchronize(stream_));
  }
  Pending exchange(const std::vector<P2POp>& ops, DType dtype) override {
    NCCL_CHECK(gpu::nccl::group_start());
    for (const P2POp& op : ops) {
      RT_CHECK(op.peer >= 0 && op.peer < size_, "peer ", op.peer, " outside communicator of ", size_);
      if (op.kind == P2POp::kSend)
        NCCL_CHECK(gpu::nccl::send(op.buffer, op.count, dtype, op.peer, comm_, stream_));
      else
        NCCL_CHECK(gpu::nccl::recv(op.buffer, op.count, dtype, op.peer, comm_, stream_));
    }
    NCCL_CHECK(gpu::nccl::group_end());
    return std::make_unique<EventPending>(stream_);
  }
  void barrier() override {
    CUDA_CHECK(gpu::stream_synchronize(stream_));
    MPI_CHECK(MPI_Barrier(mpi_));
  }

 private:
  MPI_Comm mpi_ = MPI_COMM_NULL;
  gpu::Stream stream_ = nullptr;
  bool own_stream_ = false;
  gpu::nccl::Comm comm_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, gpu::Stream stream) {
  return std::make_unique<NcclCommunicator>(comm, stream);
}

gpu::Stream nccl_communicator_stream(Communicator& comm) {
  auto* n = dynamic_cast<NcclCommunicator*>(&comm);
  RT_CHECK(n != nullptr, "not an NCCL communicator");
  return n->stream();
}

}  // namespace ringtrain
