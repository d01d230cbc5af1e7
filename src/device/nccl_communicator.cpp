// NcclCommunicator: Communicator over the GPU layer's NCCL (device pointers, counts in elements),
// ordered against the host or against a compute stream (see nccl_communicator.h).
#include "src/device/nccl_communicator.h"

#include <mutex>
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

// Events handed to Pendings and taken back when they complete, so steady state creates none.
// Destroyed with the last of the communicator and its Pendings; `compute` (may be null) is
// synchronized first, so no wait issued there still refers to an event (the emulator's waits
// hold the event itself).
class EventPool {
 public:
  explicit EventPool(gpu::Stream compute) : compute_(compute) {}
  ~EventPool() {
    if (compute_) gpu::stream_synchronize(compute_);
    for (gpu::Event e : free_) gpu::event_destroy(e);
  }
  gpu::Event get() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        gpu::Event e = free_.back();
        free_.pop_back();
        return e;
      }
    }
    gpu::Event e = nullptr;
    CUDA_CHECK(gpu::event_create(&e));
    return e;
  }
  void put(gpu::Event e) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(e);
  }

 private:
  gpu::Stream compute_;
  std::mutex mu_;
  std::vector<gpu::Event> free_;
};

// Completes on an event recorded on the communication stream after the operation: the host
// waits for it (compute == nullptr) or the compute stream does (device side).
class EventPending final : public PendingOp {
 public:
  EventPending(std::shared_ptr<EventPool> pool, gpu::Stream comm_stream, gpu::Stream compute)
      : pool_(std::move(pool)), compute_(compute) {
    event_ = pool_->get();
    CUDA_CHECK(gpu::event_record(event_, comm_stream));
  }
  ~EventPending() override {
    if (!event_) return;
    if (compute_)
      gpu::stream_wait_event(compute_, event_);
    else
      gpu::event_synchronize(event_);
    pool_->put(event_);
  }
  void wait() override {
    if (!event_) return;
    if (compute_)
      CUDA_CHECK(gpu::stream_wait_event(compute_, event_));
    else
      CUDA_CHECK(gpu::event_synchronize(event_));
    pool_->put(event_);
    event_ = nullptr;
  }

 private:
  std::shared_ptr<EventPool> pool_;
  gpu::Stream compute_;
  gpu::Event event_ = nullptr;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, gpu::Stream stream, gpu::Stream compute)
      : stream_(stream), compute_(compute), pool_(std::make_shared<EventPool>(compute)) {
    MPI_CHECK(MPI_Comm_dup(comm, &mpi_));
    if (!stream_) {
      CUDA_CHECK(gpu::stream_create(&stream_));
      own_stream_ = true;
    }
    RT_CHECK(compute_ == nullptr || compute_ != stream_,
             "NCCL communicator: the compute stream must differ from the communication stream");
    if (compute_) {
      CUDA_CHECK(gpu::event_create(&inputs_ready_));
      CUDA_CHECK(gpu::event_create(&outputs_ready_));
    }
    NCCL_CHECK(gpu::nccl::comm_init_from_mpi(&comm_, mpi_));
    NCCL_CHECK(gpu::nccl::comm_user_rank(comm_, &rank_));
    NCCL_CHECK(gpu::nccl::comm_count(comm_, &size_));
  }
  ~NcclCommunicator() override {
    // The communication stream first (its waits run the compute stream up to their events),
    // then the compute stream, whose waits refer to events destroyed below.
    gpu::stream_synchronize(stream_);
    if (compute_) gpu::stream_synchronize(compute_);
    gpu::nccl::comm_destroy(comm_);
    if (inputs_ready_) gpu::event_destroy(inputs_ready_);
    if (outputs_ready_) gpu::event_destroy(outputs_ready_);
    if (own_stream_) gpu::stream_destroy(stream_);
    MPI_Comm_free(&mpi_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  gpu::Stream stream() const { return stream_; }

  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override {
    if (count == 0) return;
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::all_reduce(buf, buf, count, dtype, red_op(op), comm_, stream_));
    finish_blocking();
  }
  Pending all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op) override {
    inputs_from_compute();
    if (count > 0) NCCL_CHECK(gpu::nccl::all_reduce(buf, buf, count, dtype, red_op(op), comm_, stream_));
    return pending();
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::reduce_scatter(send, recv, count, dtype, red_op(op), comm_, stream_));
    finish_blocking();
  }
  Pending reduce_scatter_async(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::reduce_scatter(send, recv, count, dtype, red_op(op), comm_, stream_));
    return pending();
  }
  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::all_gather(send, recv, count, dtype, comm_, stream_));
    finish_blocking();
  }
  Pending all_gather_async(const void* send, void* recv, size_t count, DType dtype) override {
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::all_gather(send, recv, count, dtype, comm_, stream_));
    return pending();
  }
  void all_to_all(const void* send, void* recv, size_t count, DType dtype) override {
    // NCCL has no all-to-all: one group of sends and receives, block j to rank j.
    inputs_from_compute();
    const size_t bytes = count * dtype_size(dtype);
    NCCL_CHECK(gpu::nccl::group_start());
    for (int peer = 0; peer < size_; ++peer) {
      const char* s = static_cast<const char*>(send) + bytes * static_cast<size_t>(peer);
      char* r = static_cast<char*>(recv) + bytes * static_cast<size_t>(peer);
      NCCL_CHECK(gpu::nccl::send(s, count, dtype, peer, comm_, stream_));
      NCCL_CHECK(gpu::nccl::recv(r, count, dtype, peer, comm_, stream_));
    }
    NCCL_CHECK(gpu::nccl::group_end());
    finish_blocking();
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::broadcast(buf, buf, count, dtype, root, comm_, stream_));
    finish_blocking();
  }
  Pending exchange(const std::vector<P2POp>& ops, DType dtype) override {
    for (const P2POp& op : ops)
      RT_CHECK(op.peer >= 0 && op.peer < size_, "peer ", op.peer, " outside communicator of ", size_);
    inputs_from_compute();
    NCCL_CHECK(gpu::nccl::group_start());
    for (const P2POp& op : ops) {
      if (op.kind == P2POp::kSend)
        NCCL_CHECK(gpu::nccl::send(op.buffer, op.count, dtype, op.peer, comm_, stream_));
      else
        NCCL_CHECK(gpu::nccl::recv(op.buffer, op.count, dtype, op.peer, comm_, stream_));
    }
    NCCL_CHECK(gpu::nccl::group_end());
    return pending();
  }
  void barrier() override {
    CUDA_CHECK(gpu::stream_synchronize(stream_));
    if (compute_) CUDA_CHECK(gpu::stream_synchronize(compute_));
    MPI_CHECK(MPI_Barrier(mpi_));
  }

 private:
  // The communication stream waits for everything issued on the compute stream so far. One
  // event serves every operation: a stream wait binds to the record made before it, so the
  // event may be recorded again at once.
  void inputs_from_compute() {
    if (!compute_) return;
    CUDA_CHECK(gpu::event_record(inputs_ready_, compute_));
    CUDA_CHECK(gpu::stream_wait_event(stream_, inputs_ready_));
  }
  // A blocking call's end: the compute stream (device side) or the host waits for the result.
  void finish_blocking() {
    if (!compute_) {
      CUDA_CHECK(gpu::stream_synchronize(stream_));
      return;
    }
    CUDA_CHECK(gpu::event_record(outputs_ready_, stream_));
    CUDA_CHECK(gpu::stream_wait_event(compute_, outputs_ready_));
  }
  Pending pending() { return std::make_unique<EventPending>(pool_, stream_, compute_); }

  MPI_Comm mpi_ = MPI_COMM_NULL;
  gpu::Stream stream_ = nullptr;
  gpu::Stream compute_ = nullptr;
  bool own_stream_ = false;
  gpu::Event inputs_ready_ = nullptr;
  gpu::Event outputs_ready_ = nullptr;
  std::shared_ptr<EventPool> pool_;
  gpu::nccl::Comm comm_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, gpu::Stream stream, gpu::Stream compute) {
  return std::make_unique<NcclCommunicator>(comm, stream, compute);
}

gpu::Stream nccl_communicator_stream(Communicator& comm) {
  auto* n = dynamic_cast<NcclCommunicator*>(&comm);
  RT_CHECK(n != nullptr, "not an NCCL communicator");
  return n->stream();
}

}  // namespace ringtrain
