// A Communicator decorator for the benchmarks: forwards every call to the wrapped communicator
// and counts, per operation, the calls, the payload elements and bytes, and the wall time spent
// inside blocking calls and inside wait() of non-blocking ones (the time a rank waited on the
// network rather than computed).
//
// Payload is what the operation moves as the caller sees it, per rank:
//   all_reduce, broadcast     count                (the buffer)
//   reduce_scatter            count * size         (the full input)
//   all_gather, all_to_all    count * size         (the full output / input)
//   exchange                  the counts of the send legs (receives are another rank's sends)
// Bytes on the wire depend on the algorithm (a ring all-reduce sends 2 (n-1)/n of it).
//
// Used directly where a benchmark hands a Communicator to an algorithm (ring attention takes
// one by reference). The mesh owns its communicators, so wrapping those needs a hook in
// parallel/mesh.h; bench/steps/pmpi_counter.cpp counts the whole step at the MPI layer instead.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/core/communicator.h"

namespace ringtrain::bench {

struct CommCounts {
  int64_t calls = 0;
  int64_t elements = 0;
  int64_t bytes = 0;
  double wait_s = 0.0;  // wall time blocked in the call or in wait()
};

enum CommOp { kAllReduce, kReduceScatter, kAllGather, kAllToAll, kBroadcast, kExchange, kBarrier, kNumCommOps };

inline const char* comm_op_name(int op) {
  static const char* const kNames[kNumCommOps] = {"all_reduce", "reduce_scatter", "all_gather",
                                                  "all_to_all", "broadcast",      "exchange",
                                                  "barrier"};
  return kNames[op];
}

class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }

  void all_reduce(void* buf, size_t count, DType dtype, ReduceOp op) override {
    Timed t(this, kAllReduce, count, dtype);
    inner_.all_reduce(buf, count, dtype, op);
  }
  Pending all_reduce_async(void* buf, size_t count, DType dtype, ReduceOp op) override {
    add(kAllReduce, count, dtype);
    return wrap(kAllReduce, inner_.all_reduce_async(buf, count, dtype, op));
  }
  Pending reduce_scatter_async(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    add(kReduceScatter, count * static_cast<size_t>(size()), dtype);
    return wrap(kReduceScatter, inner_.reduce_scatter_async(send, recv, count, dtype, op));
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    Timed t(this, kReduceScatter, count * static_cast<size_t>(size()), dtype);
    inner_.reduce_scatter(send, recv, count, dtype, op);
  }
  void all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    Timed t(this, kAllGather, count * static_cast<size_t>(size()), dtype);
    inner_.all_gather(send, recv, count, dtype);
  }
  Pending all_gather_async(const void* send, void* recv, size_t count, DType dtype) override {
    add(kAllGather, count * static_cast<size_t>(size()), dtype);
    return wrap(kAllGather, inner_.all_gather_async(send, recv, count, dtype));
  }
  void all_to_all(const void* send, void* recv, size_t count, DType dtype) override {
    Timed t(this, kAllToAll, count * static_cast<size_t>(size()), dtype);
    inner_.all_to_all(send, recv, count, dtype);
  }
  void broadcast(void* buf, size_t count, DType dtype, int root) override {
    Timed t(this, kBroadcast, count, dtype);
    inner_.broadcast(buf, count, dtype, root);
  }
  Pending exchange(const std::vector<P2POp>& ops, DType dtype) override {
    size_t sent = 0;
    for (const P2POp& op : ops)
      if (op.kind == P2POp::kSend) sent += op.count;
    add(kExchange, sent, dtype);
    return wrap(kExchange, inner_.exchange(ops, dtype));
  }
  void barrier() override {
    Timed t(this, kBarrier, 0, DType::kF32);
    inner_.barrier();
  }

  const CommCounts& counts(int op) const { return counts_[op]; }
  CommCounts total() const {
    CommCounts sum;
    for (const CommCounts& c : counts_) {
      sum.calls += c.calls;
      sum.elements += c.elements;
      sum.bytes += c.bytes;
      sum.wait_s += c.wait_s;
    }
    return sum;
  }
  void reset() { counts_ = {}; }

 private:
  using Clock = std::chrono::steady_clock;

  static size_t dtype_bytes(DType dtype) {
    switch (dtype) {
      case DType::kF64:
      case DType::kI64: return 8;
      case DType::kBF16:
      case DType::kF16:
      case DType::kU16: return 2;
      default: return 4;
    }
  }
  void add(int op, size_t count, DType dtype) {
    CommCounts& c = counts_[op];
    c.calls += 1;
    c.elements += static_cast<int64_t>(count);
    c.bytes += static_cast<int64_t>(count * dtype_bytes(dtype));
  }
  void add_wait(int op, double s) { counts_[op].wait_s += s; }

  // Counts one blocking call and the time spent in it.
  struct Timed {
    Timed(CountingCommunicator* self, int op, size_t count, DType dtype) : self_(self), op_(op) {
      self_->add(op, count, dtype);
    }
    ~Timed() { self_->add_wait(op_, std::chrono::duration<double>(Clock::now() - t0_).count()); }
    CountingCommunicator* self_;
    int op_;
    Clock::time_point t0_ = Clock::now();
  };

  // A pending operation whose wait() is timed.
  class TimedPending final : public PendingOp {
   public:
    TimedPending(CountingCommunicator* self, int op, Pending inner)
        : self_(self), op_(op), inner_(std::move(inner)) {}
    ~TimedPending() override { wait(); }
    void wait() override {
      if (!inner_) return;
      const auto t0 = Clock::now();
      inner_->wait();
      inner_.reset();
      self_->add_wait(op_, std::chrono::duration<double>(Clock::now() - t0).count());
    }

   private:
    CountingCommunicator* self_;
    int op_;
    Pending inner_;
  };
  Pending wrap(int op, Pending inner) {
    if (!inner) return inner;
    return std::make_unique<TimedPending>(this, op, std::move(inner));
  }

  Communicator& inner_;
  std::array<CommCounts, kNumCommOps> counts_{};
};

}  // namespace ringtrain::bench
