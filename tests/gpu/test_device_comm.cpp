// Device communicators ordered against a compute stream, under mpirun (2 and 4 ranks) on the
// emulated device: the NCCL communicator made with a compute stream and the staged-MPI
// communicator. Every collective and the ring exchange run on device buffers whose data a
// memcpy_async and a kernel on the compute stream produced right before the call, and are read
// back through the compute stream only; results are checked against the host MpiCommunicator.
// Each case runs with eager streams and with the emulator's deferred streams, where a missing
// event wait (communication reading before the producer ran, or compute reading before the
// communication ran) shows up as poisoned or stale data. Registered in tests/gpu/CMakeLists.txt.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cuda_bf16.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "src/core/communicator.h"
#include "src/core/mpi_communicator.h"
#include "src/device/nccl_communicator.h"
#include "src/device/staged_mpi_communicator.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gpu/kernels/device_comm_kernels.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

enum class Kind { kNccl, kStaged };
struct Case {
  Kind kind;
  gpu::StreamMode mode;
  bool comm_first = false;  // deferred: drain the communication stream before reading
};
std::string case_name(const Case& c) {
  return std::string(c.kind == Kind::kNccl ? "NcclComputeStream" : "StagedMpi") +
         (c.mode == gpu::StreamMode::kEager ? "Eager" : "Deferred") + (c.comm_first ? "CommFirst" : "");
}
std::string param_name(const ::testing::TestParamInfo<Case>& info) { return case_name(info.param); }
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

class DeviceComm : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    gpu::set_stream_mode(GetParam().mode);
    CUDA_CHECK(gpu::stream_create(&compute_));
    if (GetParam().kind == Kind::kNccl)
      comm_ = make_nccl_communicator(MPI_COMM_WORLD, nullptr, compute_);
    else
      comm_ = make_staged_mpi_communicator(MPI_COMM_WORLD, compute_);
    host_ = make_mpi_communicator(MPI_COMM_WORLD);
    rank_ = comm_->rank();
    size_ = comm_->size();
  }
  void TearDown() override {
    comm_.reset();
    gpu::stream_destroy(compute_);
    gpu::set_stream_mode(gpu::StreamMode::kEager);
  }

  // d <- 2 * src, by a copy and a kernel issued on the compute stream (pending there in
  // deferred mode until something waits for it). `src` must live until the stream ran.
  void produce(DeviceBuffer<float>& d, const std::vector<float>& src) {
    CUDA_CHECK(gpu::memcpy_async(d.get(), src.data(), src.size() * sizeof(float), gpu::CopyKind::kHostToDevice, compute_));
    CUDA_CHECK(launch_axpb(d.get(), src.size(), 2.0f, 0.0f, compute_));
  }
  static std::vector<float> doubled(std::vector<float> v) {
    for (float& x : v) x *= 2.0f;
    return v;
  }
  // Reads through the compute stream only (never a device-wide synchronize, which would hide a
  // missing wait).
  template <typename T>
  std::vector<T> read_on_compute(const DeviceBuffer<T>& d) {
    std::vector<T> h(d.size());
    CUDA_CHECK(gpu::memcpy_async(h.data(), d.get(), d.size() * sizeof(T), gpu::CopyKind::kDeviceToHost, compute_));
    CUDA_CHECK(gpu::stream_synchronize(compute_));
    return h;
  }
  // Deferred streams drain in one order or the other, as a GPU may run them:
  //  - CommFirst runs the communication stream before the compute stream's pending work, so a
  //    communicator that does not order its stream after the producer's kernel reduces or sends
  //    poison;
  //  - otherwise read_on_compute drains only the compute stream, so a communicator that does
  //    not make the compute stream wait for its result lets the read run before the transfer.
  // (The staged communicator has no stream of its own.)
  void comm_stream_first() {
    if (GetParam().kind == Kind::kNccl && GetParam().comm_first)
      CUDA_CHECK(gpu::stream_synchronize(nccl_communicator_stream(*comm_)));
  }
  uint64_t seed(uint64_t base) const { return base + static_cast<uint64_t>(rank_); }

  gpu::Stream compute_ = nullptr;
  std::unique_ptr<Communicator> comm_, host_;
  int rank_ = 0, size_ = 1;
};

// Catches: an all-reduce that reads its input before the producing kernel ran, or whose result
// compute work reads before the reduction ran (deferred streams), or a wrong reduction.
TEST_P(DeviceComm, AllReduceMatchesHost) {
  const size_t n = 1000;
  const auto x = random_floats(n, seed(10));
  SCOPED_TRACE("seed " + std::to_string(seed(10)));
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    std::vector<float> h = doubled(x);
    host_->all_reduce(h.data(), n, DType::kF32, op);
    DeviceBuffer<float> d(n);
    produce(d, x);
    comm_->all_reduce(d.get(), n, DType::kF32, op);
    comm_stream_first();
    const auto got = read_on_compute(d);
    EXPECT_EQ(compare(got.data(), h.data(), static_cast<int64_t>(n), kF32Layout, "all_reduce"), "");
  }
}

// Catches: all_reduce_async's Pending::wait() not ordering the compute stream after the
// reduction (or the reduction not ordered after its producer).
TEST_P(DeviceComm, AllReduceAsyncMatchesHost) {
  const size_t n = 513;
  const auto x = random_floats(n, seed(20));
  SCOPED_TRACE("seed " + std::to_string(seed(20)));
  std::vector<float> h = doubled(x);
  host_->all_reduce(h.data(), n, DType::kF32, ReduceOp::kSum);
  DeviceBuffer<float> d(n), other(n);
  produce(d, x);
  Pending p = comm_->all_reduce_async(d.get(), n, DType::kF32, ReduceOp::kSum);
  comm_stream_first();
  produce(other, x);  // compute work overlapping the reduction
  p->wait();
  const auto got = read_on_compute(d);
  EXPECT_EQ(compare(got.data(), h.data(), static_cast<int64_t>(n), kF32Layout, "all_reduce_async"), "");
  EXPECT_EQ(read_on_compute(other), doubled(x));
}

// Catches: wrong block offsets, or missing input/output ordering, of reduce-scatter,
// all-gather, all-to-all and broadcast.
TEST_P(DeviceComm, CollectivesMatchHost) {
  const size_t n = 257, p = static_cast<size_t>(size_);
  const auto x = random_floats(n * p, seed(30));
  SCOPED_TRACE("seed " + std::to_string(seed(30)));
  const auto hx = doubled(x);
  const std::vector<float> part(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
  const auto hpart = doubled(part);
  std::vector<float> h_rs(n), h_ag(n * p), h_a2a(n * p), h_bc = hx;
  host_->reduce_scatter(hx.data(), h_rs.data(), n, DType::kF32, ReduceOp::kSum);
  host_->all_gather(hpart.data(), h_ag.data(), n, DType::kF32);
  host_->all_to_all(hx.data(), h_a2a.data(), n, DType::kF32);
  host_->broadcast(h_bc.data(), n * p, DType::kF32, size_ - 1);
  {
    DeviceBuffer<float> ds(n * p), dr(n);
    produce(ds, x);
    comm_->reduce_scatter(ds.get(), dr.get(), n, DType::kF32, ReduceOp::kSum);
    comm_stream_first();
    const auto got = read_on_compute(dr);
    EXPECT_EQ(compare(got.data(), h_rs.data(), static_cast<int64_t>(n), kF32Layout, "reduce_scatter"), "");
  }
  {
    DeviceBuffer<float> ds(n), dr(n * p);
    produce(ds, part);
    comm_->all_gather(ds.get(), dr.get(), n, DType::kF32);
    comm_stream_first();
    EXPECT_EQ(first_bitwise_difference(read_on_compute(dr), h_ag), -1) << "all_gather";
  }
  {
    DeviceBuffer<float> ds(n * p), dr(n * p);
    produce(ds, x);
    comm_->all_to_all(ds.get(), dr.get(), n, DType::kF32);
    comm_stream_first();
    EXPECT_EQ(first_bitwise_difference(read_on_compute(dr), h_a2a), -1) << "all_to_all";
  }
  {
    DeviceBuffer<float> d(n * p);
    produce(d, x);
    comm_->broadcast(d.get(), n * p, DType::kF32, size_ - 1);
    comm_stream_first();
    EXPECT_EQ(first_bitwise_difference(read_on_compute(d), h_bc), -1) << "broadcast";
  }
  comm_->barrier();
}

// Catches: ring legs to the wrong peer; a send staged or sent before its producing kernel ran;
// received data read on the compute stream before wait() ordered it after the transfer; compute
// issued between exchange() and wait() disturbed by the transfer.
TEST_P(DeviceComm, RingExchangeMatchesHost) {
  const int r = rank_, p = size_;
  const size_t n = 1000;
  const auto x = random_floats(n, seed(40));
  SCOPED_TRACE("seed " + std::to_string(seed(40)));
  auto hx = doubled(x);
  std::vector<float> hrecv(n);
  host_->exchange({{P2POp::kSend, hx.data(), n, (r + 1) % p}, {P2POp::kRecv, hrecv.data(), n, (r + p - 1) % p}},
                  DType::kF32)->wait();
  for (int round = 0; round < 3; ++round) {  // the same buffers again: staging is reused
    DeviceBuffer<float> ds(n), dr(n), other(n);
    produce(ds, x);
    Pending pend = comm_->exchange(
        {{P2POp::kSend, ds.get(), n, (r + 1) % p}, {P2POp::kRecv, dr.get(), n, (r + p - 1) % p}}, DType::kF32);
    comm_stream_first();
    produce(other, x);
    pend->wait();
    EXPECT_EQ(first_bitwise_difference(read_on_compute(dr), hrecv), -1) << "exchange, round " << round;
    EXPECT_EQ(read_on_compute(other), hx);
  }
}

// Catches: destroying an unwaited Pending that neither waits nor orders the compute stream
// after the transfer (the received buffer would be read too early).
TEST_P(DeviceComm, DroppedPendingStillOrdersCompute) {
  const int r = rank_, p = size_;
  const size_t n = 300;
  const auto x = random_floats(n, seed(50));
  const auto expect = doubled(random_floats(n, 50 + static_cast<uint64_t>((r + p - 1) % p)));
  DeviceBuffer<float> ds(n), dr(n);
  produce(ds, x);
  comm_->exchange({{P2POp::kSend, ds.get(), n, (r + 1) % p}, {P2POp::kRecv, dr.get(), n, (r + p - 1) % p}},
                  DType::kF32);  // the Pending is destroyed right here, unwaited
  comm_stream_first();
  EXPECT_EQ(first_bitwise_difference(read_on_compute(dr), expect), -1);
}

// Catches: half-precision buffers refused by the host path (MPI has no bf16) or moved with a
// wrong element size; bf16 sums not rounded once from fp32.
TEST_P(DeviceComm, Bf16AllReduceAndExchange) {
  const int r = rank_, p = size_;
  const size_t n = 64;
  std::vector<std::vector<float>> all;
  for (int q = 0; q < p; ++q) all.push_back(random_floats(n, 900 + static_cast<uint64_t>(q)));
  std::vector<__nv_bfloat16> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = __float2bfloat16(all[static_cast<size_t>(r)][i]);
  DeviceBuffer<__nv_bfloat16> d(n), dr(n);
  CUDA_CHECK(gpu::memcpy_async(d.get(), mine.data(), n * 2, gpu::CopyKind::kHostToDevice, compute_));
  comm_->exchange({{P2POp::kSend, d.get(), n, (r + 1) % p}, {P2POp::kRecv, dr.get(), n, (r + p - 1) % p}},
                  DType::kBF16)->wait();
  comm_stream_first();
  const auto got_x = read_on_compute(dr);
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(__bfloat162float(got_x[i]), __bfloat162float(__float2bfloat16(all[static_cast<size_t>((r + p - 1) % p)][i])));
  comm_->all_reduce(d.get(), n, DType::kBF16, ReduceOp::kSum);
  comm_stream_first();
  const auto got = read_on_compute(d);
  std::vector<float> got_f(n), ref(n);
  for (size_t i = 0; i < n; ++i) {
    float s = 0;
    for (int q = 0; q < p; ++q) s += __bfloat162float(__float2bfloat16(all[static_cast<size_t>(q)][i]));
    ref[i] = s;
    got_f[i] = __bfloat162float(got[i]);
  }
  EXPECT_EQ(compare(got_f.data(), ref.data(), static_cast<int64_t>(n), kBF16, "bf16 all_reduce"), "");
}

INSTANTIATE_TEST_SUITE_P(Modes, DeviceComm,
                         ::testing::Values(Case{Kind::kNccl, gpu::StreamMode::kEager},
                                           Case{Kind::kNccl, gpu::StreamMode::kDeferred},
                                           Case{Kind::kNccl, gpu::StreamMode::kDeferred, true},
                                           Case{Kind::kStaged, gpu::StreamMode::kEager},
                                           Case{Kind::kStaged, gpu::StreamMode::kDeferred}),
                         param_name);

// Catches: staging buffers allocated per operation (pinned allocations are slow and
// synchronizing) instead of reused once they have grown to the step's sizes.
TEST(StagedMpiCommunicator, SteadyStateAllocatesNoStaging) {
  gpu::Stream compute;
  CUDA_CHECK(gpu::stream_create(&compute));
  {
    auto comm = make_staged_mpi_communicator(MPI_COMM_WORLD, compute);
    const int r = comm->rank(), p = comm->size();
    const size_t n = 4096;
    DeviceBuffer<float> a(n * static_cast<size_t>(p)), b(n * static_cast<size_t>(p)), k(n), v(n), kr(n), vr(n);
    CUDA_CHECK(gpu::memset(a.get(), 0, a.size() * 4));
    CUDA_CHECK(gpu::memset(b.get(), 0, b.size() * 4));
    CUDA_CHECK(gpu::memset(k.get(), 0, n * 4));
    CUDA_CHECK(gpu::memset(v.get(), 0, n * 4));
    auto step = [&] {
      Pending ring = comm->exchange({{P2POp::kSend, k.get(), n, (r + 1) % p},
                                     {P2POp::kSend, v.get(), n, (r + 1) % p},
                                     {P2POp::kRecv, kr.get(), n, (r + p - 1) % p},
                                     {P2POp::kRecv, vr.get(), n, (r + p - 1) % p}},
                                    DType::kF32);
      Pending grads = comm->all_reduce_async(a.get(), n, DType::kF32, ReduceOp::kSum);
      ring->wait();
      comm->all_gather(k.get(), b.get(), n, DType::kF32);
      comm->reduce_scatter(b.get(), v.get(), n, DType::kF32, ReduceOp::kSum);
      grads->wait();
      comm->all_reduce(kr.get(), 17, DType::kBF16, ReduceOp::kSum);
    };
    step();
    const int64_t warm = staged_mpi_host_allocations(*comm);
    for (int i = 0; i < 5; ++i) step();
    EXPECT_EQ(staged_mpi_host_allocations(*comm), warm);
  }
  gpu::stream_destroy(compute);
}

// Catches: an exchange whose sends/receives are not issued on the communication stream, or a
// Pending::wait() that synchronizes too early: the trace must show the NCCL legs on the comm
// stream (after a wait on the compute stream's event), then the kernel issued between
// exchange() and wait() on the compute stream, and only after it the compute stream's wait on
// the event recorded after the legs.
TEST(NcclComputeStream, ExchangeOverlapsComputeInTrace) {
  if (!gpu::kEmulated) GTEST_SKIP() << "the trace is recorded on the emulated device";
  gpu::Stream compute;
  CUDA_CHECK(gpu::stream_create(&compute));
  {
    auto comm = make_nccl_communicator(MPI_COMM_WORLD, nullptr, compute);
    const int r = comm->rank(), p = comm->size();
    const int cs = gpu::stream_id(nccl_communicator_stream(*comm)), ks = gpu::stream_id(compute);
    const size_t n = 256;
    DeviceBuffer<float> ds(random_floats(n, 60)), dr(n), other(random_floats(n, 61));
    gpu::trace_start();
    Pending pend = comm->exchange(
        {{P2POp::kSend, ds.get(), n, (r + 1) % p}, {P2POp::kRecv, dr.get(), n, (r + p - 1) % p}}, DType::kF32);
    CUDA_CHECK(launch_axpb(other.get(), n, 1.0f, 1.0f, compute));
    pend->wait();
    CUDA_CHECK(gpu::stream_synchronize(compute));
    const auto trace = gpu::trace_stop();
    auto find = [&](int stream, const std::string& prefix, size_t from = 0) -> int {
      for (size_t i = from; i < trace.size(); ++i)
        if (trace[i].stream_id == stream && trace[i].what.rfind(prefix, 0) == 0) return static_cast<int>(i);
      return -1;
    };
    std::string dump;
    for (const auto& e : trace) dump += std::to_string(e.stream_id) + ": " + e.what + "\n";
    const int in_record = find(ks, "event_record #");
    const int in_wait = find(cs, "wait_event #");
    const int send = find(cs, "nccl send"), recv = find(cs, "nccl recv");
    const int kernel = find(ks, "launch ");
    ASSERT_TRUE(in_record >= 0 && in_wait > in_record && send > in_wait && recv > in_wait) << dump;
    EXPECT_EQ(trace[static_cast<size_t>(in_record)].what.substr(13), trace[static_cast<size_t>(in_wait)].what.substr(11))
        << "the comm stream waits on the compute stream's event\n" << dump;
    ASSERT_GT(kernel, std::max(send, recv)) << dump;
    EXPECT_NE(trace[static_cast<size_t>(kernel)].what.find("axpb"), std::string::npos) << dump;
    const int out_record = find(cs, "event_record #", static_cast<size_t>(std::max(send, recv)));
    ASSERT_GE(out_record, 0) << dump;
    const std::string out_event = trace[static_cast<size_t>(out_record)].what.substr(13);
    int out_wait = -1;
    for (size_t i = 0; i < trace.size() && out_wait < 0; ++i)
      if (trace[i].stream_id == ks && trace[i].what == "wait_event " + out_event) out_wait = static_cast<int>(i);
    EXPECT_GT(out_wait, kernel) << "the compute stream waited on the exchange before its overlapping kernel\n" << dump;
    std::vector<float> got(n), expect = random_floats(n, 60);
    CUDA_CHECK(gpu::memcpy(got.data(), dr.get(), n * sizeof(float), gpu::CopyKind::kDeviceToHost));
    EXPECT_EQ(got, expect);
  }
  gpu::stream_destroy(compute);
}

}  // namespace
}  // namespace ringtrain::test
