// StagedMpiCommunicator: device buffers through pinned host staging and the host MPI
// communicator (see staged_mpi_communicator.h).
#include "src/device/staged_mpi_communicator.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

#include "src/core/error.h"
#include "src/core/mpi_communicator.h"

namespace ringtrain {

namespace {

// A pinned host buffer of the pool; `busy` while an operation owns it.
struct Slot {
  void* ptr = nullptr;
  size_t capacity = 0;
  bool busy = false;
};

// Pinned staging buffers in power-of-two size classes (at least 256 bytes), reused: a request
// takes a free buffer of its class or adds one. The same sequence of operations (a training
// step) then needs no new buffer after its first run, whatever the order of requests.
class StagingPool {
 public:
  ~StagingPool() {
    for (auto& s : slots_) gpu::host_free_pinned(s->ptr);
  }
  Slot* acquire(size_t bytes) {
    size_t capacity = 256;
    while (capacity < bytes) capacity *= 2;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : slots_)
      if (!s->busy && s->capacity == capacity) {
        s->busy = true;
        return s.get();
      }
    auto slot = std::make_unique<Slot>();
    ++allocations_;
    CUDA_CHECK(gpu::host_alloc_pinned(&slot->ptr, capacity));
    slot->capacity = capacity;
    slot->busy = true;
    slots_.push_back(std::move(slot));
    return slots_.back().get();
  }
  void release(Slot* s) {
    std::lock_guard<std::mutex> lock(mu_);
    s->busy = false;
  }
  int64_t allocations() {
    std::lock_guard<std::mutex> lock(mu_);
    return allocations_;
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> slots_;
  int64_t allocations_ = 0;
};

bool is_half(DType t) { return t == DType::kBF16 || t == DType::kF16; }

// The type MPI moves `t` as when nothing is reduced: the bytes, in elements of the same size.
DType move_type(DType t) {
  switch (dtype_size(t)) {
    case 2: return DType::kU16;
    case 4: return DType::kU32;
    default: return DType::kI64;
  }
}

void widen(const void* src, float* dst, size_t n, DType t) {
  if (t == DType::kBF16) {
    const auto* s = static_cast<const __nv_bfloat16*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = __bfloat162float(s[i]);
  } else {
    const auto* s = static_cast<const __half*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = __half2float(s[i]);
  }
}
void narrow(const float* src, void* dst, size_t n, DType t) {
  if (t == DType::kBF16) {
    auto* d = static_cast<__nv_bfloat16*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = __float2bfloat16(src[i]);
  } else {
    auto* d = static_cast<__half*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = __float2half(src[i]);
  }
}

// What Pendings share with their communicator, so either may go first.
struct State {
  MPI_Comm mpi = MPI_COMM_NULL;
  std::unique_ptr<Communicator> host;  // on `mpi`; destroyed before it is freed
  StagingPool pool;
  gpu::Stream compute = nullptr;
  ~State() {
    host.reset();
    if (mpi != MPI_COMM_NULL) MPI_Comm_free(&mpi);
  }
  void d2h(void* host_dst, const void* dev_src, size_t bytes) {
    if (bytes) CUDA_CHECK(gpu::memcpy_async(host_dst, dev_src, bytes, gpu::CopyKind::kDeviceToHost, compute));
  }
  void h2d(void* dev_dst, const void* host_src, size_t bytes) {
    if (bytes) CUDA_CHECK(gpu::memcpy_async(dev_dst, host_src, bytes, gpu::CopyKind::kHostToDevice, compute));
  }
  void sync() { CUDA_CHECK(gpu::stream_synchronize(compute)); }
};

// Slots owned for the length of an operation, returned to the pool when it ends.
class Slots {
 public:
  explicit Slots(std::shared_ptr<State> st) : st_(std::move(st)) {}
  ~Slots() { clear(); }
  Slots(Slots&&) = default;
  Slot* get(size_t bytes) {
    held_.push_back(st_->pool.acquire(bytes));
    return held_.back();
  }
  void clear() {
    if (!st_) return;
    for (Slot* s : held_) st_->pool.release(s);
    held_.clear();
  }

 private:
  std::shared_ptr<State> st_;
  std::vector<Slot*> held_;
};

// A staged asynchronous operation: the host MPI request, then the copies back to the device.
class StagedPending final : public PendingOp {
 public:
  struct CopyBack {
    void* device;       // destination on the device
    void* host;         // staging (already in the device's dtype) ...
    const float* wide;  // ... or an fp32 buffer to narrow into `host` first
    size_t count;
    DType dtype;
  };
  StagedPending(std::shared_ptr<State> st, Pending host, Slots slots, std::vector<CopyBack> back)
      : st_(std::move(st)), host_(std::move(host)), slots_(std::move(slots)), back_(std::move(back)) {}
  ~StagedPending() override {
    try {
      wait();
    } catch (const std::exception& e) {
      // A destructor cannot throw, and continuing would leave the device buffers unwritten.
      std::fprintf(stderr, "ringtrain: error: staged-MPI operation failed while its Pending was destroyed: %s\n",
                   e.what());
      std::abort();
    }
  }
  void wait() override {
    if (!host_) return;
    host_->wait();
    host_.reset();
    for (const CopyBack& c : back_) {
      if (c.wide) narrow(c.wide, c.host, c.count, c.dtype);
      st_->h2d(c.device, c.host, c.count * dtype_size(c.dtype));
    }
    back_.clear();
    // The slots go back to the pool now: the next operation synchronizes `compute` before it
    // writes any of them, so the copies above have read them by then.
    slots_.clear();
  }

 private:
  std::shared_ptr<State> st_;
  Pending host_;
  Slots slots_;
  std::vector<CopyBack> back_;
};

class StagedMpiCommunicator final : public Communicator {
 public:
  StagedMpiCommunicator(MPI_Comm comm, gpu::Stream compute) : st_(std::make_shared<State>()) {
    MPI_CHECK(MPI_Comm_dup(comm, &st_->mpi));
    st_->host = make_mpi_communicator(st_->mpi);
    st_->compute = compute;
  }
  ~StagedMpiCommunicator() override { gpu::stream_synchronize(st_->compute); }
  int rank() const override { return st_->host->rank(); }
  int size() const override { return st_->host->size(); }
  int64_t host_allocations() { return st_->pool.allocations(); }

  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override {
    all_reduce_async(buf, count, dtype, op)->wait();
  }
  Pending all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op) override {
    const size_t bytes = count * dtype_size(dtype);
    Slots slots(st_);
    Slot* s = slots.get(bytes);
    st_->d2h(s->ptr, buf, bytes);
    st_->sync();
    std::vector<StagedPending::CopyBack> back;
    Pending host;
    if (is_half(dtype)) {
      auto* wide = static_cast<float*>(slots.get(count * sizeof(float))->ptr);
      widen(s->ptr, wide, count, dtype);
      host = st_->host->all_reduce_async(wide, count, DType::kF32, op);
      back.push_back({buf, s->ptr, wide, count, dtype});
    } else {
      host = st_->host->all_reduce_async(s->ptr, count, dtype, op);
      back.push_back({buf, s->ptr, nullptr, count, dtype});
    }
    return std::make_unique<StagedPending>(st_, std::move(host), std::move(slots), std::move(back));
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    const size_t p = static_cast<size_t>(size());
    const size_t es = dtype_size(dtype);
    Slots slots(st_);
    Slot* s = slots.get(count * p * es);
    Slot* r = slots.get(count * es);
    st_->d2h(s->ptr, send, count * p * es);
    st_->sync();
    if (is_half(dtype)) {
      auto* ws = static_cast<float*>(slots.get(count * p * sizeof(float))->ptr);
      auto* wr = static_cast<float*>(slots.get(count * sizeof(float))->ptr);
      widen(s->ptr, ws, count * p, dtype);
      st_->host->reduce_scatter(ws, wr, count, DType::kF32, op);
      narrow(wr, r->ptr, count, dtype);
    } else {
      st_->host->reduce_scatter(s->ptr, r->ptr, count, dtype, op);
    }
    st_->h2d(recv, r->ptr, count * es);
  }
  Pending reduce_scatter_async(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    RT_CHECK(!is_half(dtype), "staged-MPI reduce_scatter_async carries fp32 only");
    const size_t es = dtype_size(dtype);
    Slots slots(st_);
    Slot* s = slots.get(count * static_cast<size_t>(size()) * es);
    Slot* r = slots.get(count * es);
    st_->d2h(s->ptr, send, count * static_cast<size_t>(size()) * es);
    st_->sync();
    Pending host = st_->host->reduce_scatter_async(s->ptr, r->ptr, count, dtype, op);
    std::vector<StagedPending::CopyBack> back{{recv, r->ptr, nullptr, count, dtype}};
    return std::make_unique<StagedPending>(st_, std::move(host), std::move(slots), std::move(back));
  }
  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    all_gather_async(send, recv, count, dtype)->wait();
  }
  Pending all_gather_async(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t p = static_cast<size_t>(size());
    const size_t es = dtype_size(dtype);
    Slots slots(st_);
    Slot* s = slots.get(count * es);
    Slot* r = slots.get(count * p * es);
    st_->d2h(s->ptr, send, count * es);
    st_->sync();
    Pending host = st_->host->all_gather_async(s->ptr, r->ptr, count, move_type(dtype));
    std::vector<StagedPending::CopyBack> back{{recv, r->ptr, nullptr, count * p, dtype}};
    return std::make_unique<StagedPending>(st_, std::move(host), std::move(slots), std::move(back));
  }
  void all_to_all(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t bytes = count * static_cast<size_t>(size()) * dtype_size(dtype);
    Slots slots(st_);
    Slot* s = slots.get(bytes);
    Slot* r = slots.get(bytes);
    st_->d2h(s->ptr, send, bytes);
    st_->sync();
    st_->host->all_to_all(s->ptr, r->ptr, count, move_type(dtype));
    st_->h2d(recv, r->ptr, bytes);
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    const size_t bytes = count * dtype_size(dtype);
    Slots slots(st_);
    Slot* s = slots.get(bytes);
    const bool is_root = rank() == root;
    if (is_root) st_->d2h(s->ptr, buf, bytes);
    st_->sync();
    st_->host->broadcast(s->ptr, count, move_type(dtype), root);
    if (!is_root) st_->h2d(buf, s->ptr, bytes);
  }
  Pending exchange(const std::vector<P2POp>& ops, DType dtype) override {
    const size_t es = dtype_size(dtype);
    Slots slots(st_);
    std::vector<P2POp> host_ops;
    std::vector<StagedPending::CopyBack> back;
    host_ops.reserve(ops.size());
    for (const P2POp& op : ops) {
      RT_CHECK(op.peer >= 0 && op.peer < size(), "peer ", op.peer, " outside communicator of ", size());
      Slot* s = slots.get(op.count * es);
      if (op.kind == P2POp::kSend)
        st_->d2h(s->ptr, op.buffer, op.count * es);
      else
        back.push_back({op.buffer, s->ptr, nullptr, op.count, dtype});
      host_ops.push_back({op.kind, s->ptr, op.count, op.peer});
    }
    st_->sync();  // the sends are staged; earlier copies out of the receive slots are done
    Pending host = st_->host->exchange(host_ops, move_type(dtype));
    return std::make_unique<StagedPending>(st_, std::move(host), std::move(slots), std::move(back));
  }
  void barrier() override {
    st_->sync();
    st_->host->barrier();
  }

 private:
  std::shared_ptr<State> st_;
};

}  // namespace

std::unique_ptr<Communicator> make_staged_mpi_communicator(MPI_Comm comm, gpu::Stream compute) {
  return std::make_unique<StagedMpiCommunicator>(comm, compute);
}

int64_t staged_mpi_host_allocations(Communicator& comm) {
  auto* s = dynamic_cast<StagedMpiCommunicator*>(&comm);
  RT_CHECK(s != nullptr, "not a staged-MPI communicator");
  return s->host_allocations();
}

}  // namespace ringtrain
