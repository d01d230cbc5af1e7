// The NCCL communicator (src/device/nccl_communicator.h) under mpirun on the emulated device,
// against the MPI communicator on host memory: grouped ring send/recv, all-reduce,
// reduce-scatter, all-gather, all-to-all, broadcast; and NCCL's rules: counts in elements,
// in-place positions, an ungrouped ring of sends reported instead of hanging.
// Registered for 2 and 4 ranks in tests/gpu/CMakeLists.txt.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cuda_bf16.h>

#include <cmath>

#include "src/core/communicator.h"
#include "src/core/mpi_communicator.h"
#include "src/device/nccl.h"
#include "src/device/nccl_communicator.h"
#include "tests/gpu/gpu_test.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

int world_rank() {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

struct Comms {
  std::unique_ptr<Communicator> nccl = make_nccl_communicator(MPI_COMM_WORLD);
  std::unique_ptr<Communicator> mpi = make_mpi_communicator(MPI_COMM_WORLD);
};

// Catches: ring legs sent to the wrong peer or matched out of order.
TEST(NcclCommunicator, GroupedRingExchangeMatchesMpi) {
  Comms c;
  const int r = world_rank(), p = world_size(), n = 1000;
  const auto send = random_floats(n, 10 + static_cast<uint64_t>(r));
  DeviceBuffer<float> dsend(send), drecv(n);
  drecv.poison();
  std::vector<float> hrecv(n);
  c.nccl->exchange({{P2POp::kSend, dsend.get(), n, (r + 1) % p}, {P2POp::kRecv, drecv.get(), n, (r + p - 1) % p}}, DType::kF32)->wait();
  c.mpi->exchange({{P2POp::kSend, const_cast<float*>(send.data()), n, (r + 1) % p}, {P2POp::kRecv, hrecv.data(), n, (r + p - 1) % p}}, DType::kF32)->wait();
  EXPECT_EQ(first_bitwise_difference(drecv.download(), hrecv), -1);
}

// Catches: the communicator returning before its (deferred) stream work ran: with the
// emulator's deferred streams, its events are what make the results visible.
TEST(NcclCommunicator, RingExchangeWithDeferredStreams) {
  gpu::set_stream_mode(gpu::StreamMode::kDeferred);
  {
    Comms c;
    const int r = world_rank(), p = world_size(), n = 100;
    const auto send = random_floats(n, 30 + static_cast<uint64_t>(r));
    const auto expect = random_floats(n, 30 + static_cast<uint64_t>((r + p - 1) % p));
    DeviceBuffer<float> dsend(send), drecv(n);
    c.nccl->exchange({{P2POp::kSend, dsend.get(), n, (r + 1) % p}, {P2POp::kRecv, drecv.get(), n, (r + p - 1) % p}}, DType::kF32)->wait();
    std::vector<float> got(n);
    CUDA_CHECK(gpu::memcpy(got.data(), drecv.get(), n * sizeof(float), gpu::CopyKind::kDeviceToHost));
    EXPECT_EQ(first_bitwise_difference(got, expect), -1);
    DeviceBuffer<float> sum(send);
    c.nccl->all_reduce(sum.get(), n, DType::kF32, ReduceOp::kSum);
    CUDA_CHECK(gpu::memcpy(got.data(), sum.get(), n * sizeof(float), gpu::CopyKind::kDeviceToHost));
    EXPECT_FALSE(std::isnan(got[0]));
  }
  gpu::set_stream_mode(gpu::StreamMode::kEager);
}

// Catches: wrong reduction, wrong block offsets of reduce-scatter/all-gather/all-to-all.
TEST(NcclCommunicator, CollectivesMatchMpi) {
  Comms c;
  const int r = world_rank(), p = world_size(), n = 257;
  const uint64_t seed = 100 + static_cast<uint64_t>(r);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto x = random_floats(static_cast<size_t>(n) * p, seed);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    DeviceBuffer<float> d(x);
    std::vector<float> h = x;
    c.nccl->all_reduce(d.get(), x.size(), DType::kF32, op);
    c.mpi->all_reduce(h.data(), h.size(), DType::kF32, op);
    const auto got = d.download();
    EXPECT_EQ(compare(got.data(), h.data(), static_cast<int64_t>(h.size()), kF32Layout, "all_reduce"), "");
  }
  {
    DeviceBuffer<float> d(x);
    c.nccl->all_reduce_async(d.get(), x.size(), DType::kF32, ReduceOp::kSum)->wait();
    std::vector<float> h = x;
    c.mpi->all_reduce(h.data(), h.size(), DType::kF32, ReduceOp::kSum);
    const auto got = d.download();
    EXPECT_EQ(compare(got.data(), h.data(), static_cast<int64_t>(h.size()), kF32Layout, "all_reduce_async"), "");
  }
  {
    DeviceBuffer<float> ds(x), dr(static_cast<size_t>(n));
    std::vector<float> hr(static_cast<size_t>(n));
    c.nccl->reduce_scatter(ds.get(), dr.get(), static_cast<size_t>(n), DType::kF32, ReduceOp::kSum);
    c.mpi->reduce_scatter(x.data(), hr.data(), static_cast<size_t>(n), DType::kF32, ReduceOp::kSum);
    const auto got = dr.download();
    EXPECT_EQ(compare(got.data(), hr.data(), n, kF32Layout, "reduce_scatter"), "");
  }
  {
    DeviceBuffer<float> ds(std::vector<float>(x.begin(), x.begin() + n)), dr(x.size());
    std::vector<float> hr(x.size());
    c.nccl->all_gather(ds.get(), dr.get(), static_cast<size_t>(n), DType::kF32);
    c.mpi->all_gather(x.data(), hr.data(), static_cast<size_t>(n), DType::kF32);
    EXPECT_EQ(first_bitwise_difference(dr.download(), hr), -1) << "all_gather";
  }
  {
    DeviceBuffer<float> ds(x), dr(x.size());
    std::vector<float> hr(x.size());
    c.nccl->all_to_all(ds.get(), dr.get(), static_cast<size_t>(n), DType::kF32);
    c.mpi->all_to_all(x.data(), hr.data(), static_cast<size_t>(n), DType::kF32);
    EXPECT_EQ(first_bitwise_difference(dr.download(), hr), -1) << "all_to_all";
  }
  {
    DeviceBuffer<float> d(x);
    std::vector<float> h = x;
    c.nccl->broadcast(d.get(), x.size(), DType::kF32, p - 1);
    c.mpi->broadcast(h.data(), h.size(), DType::kF32, p - 1);
    EXPECT_EQ(first_bitwise_difference(d.download(), h), -1) << "broadcast";
  }
  c.nccl->barrier();
}

// Catches: half-precision reductions done in the half type (or in a rank-dependent order).
TEST(NcclCommunicator, Bf16AllReduceInFp32RankOrder) {
  Comms c;
  const int p = world_size(), n = 64;
  std::vector<std::vector<float>> all;
  for (int q = 0; q < p; ++q) all.push_back(random_floats(n, 900 + static_cast<uint64_t>(q)));
  std::vector<__nv_bfloat16> mine(n);
  for (int i = 0; i < n; ++i) mine[static_cast<size_t>(i)] = __float2bfloat16(all[static_cast<size_t>(world_rank())][static_cast<size_t>(i)]);
  DeviceBuffer<__nv_bfloat16> d(mine);
  c.nccl->all_reduce(d.get(), n, DType::kBF16, ReduceOp::kSum);
  const auto got = d.download();
  for (int i = 0; i < n; ++i) {
    float s = 0;
    for (int q = 0; q < p; ++q) s += __bfloat162float(__float2bfloat16(all[static_cast<size_t>(q)][static_cast<size_t>(i)]));
    EXPECT_EQ(__bfloat162float(got[static_cast<size_t>(i)]), __bfloat162float(__float2bfloat16(s))) << i;
  }
}

// Catches: a count in bytes where NCCL wants elements, host buffers, illegal overlaps.
TEST(EmulatedNccl, RulesAreEnforced) {
  if (!gpu::kEmulated) GTEST_SKIP() << "emulator-only checks";
  using gpu::nccl::Result;
  gpu::nccl::Comm comm;
  NCCL_CHECK(gpu::nccl::comm_init_from_mpi(&comm, MPI_COMM_WORLD));
  const int r = world_rank(), p = world_size(), n = 16;
  DeviceBuffer<float> d(static_cast<size_t>(n) * p);
  EXPECT_EQ(gpu::nccl::all_reduce(d.get(), d.get(), static_cast<size_t>(n * p) * sizeof(float), DType::kF32,
                                  gpu::nccl::RedOp::kSum, comm, nullptr), Result::kInvalidArgument);
  EXPECT_NE(gpu::nccl::last_error_detail().find("elements"), std::string::npos) << gpu::nccl::last_error_detail();
  std::vector<float> host(static_cast<size_t>(n));
  EXPECT_EQ(gpu::nccl::all_reduce(host.data(), host.data(), static_cast<size_t>(n), DType::kF32, gpu::nccl::RedOp::kSum,
                                  comm, nullptr), Result::kInvalidArgument);
  // all_gather in place: sendbuff == recvbuff + rank * sendcount.
  std::vector<float> init(static_cast<size_t>(n) * p, -1.0f);
  for (int i = 0; i < n; ++i) init[static_cast<size_t>(r * n + i)] = static_cast<float>(r * 1000 + i);
  d.upload(init);
  EXPECT_EQ(gpu::nccl::all_gather(d.get() + r * n, d.get(), static_cast<size_t>(n), DType::kF32, comm, nullptr), Result::kSuccess);
  const auto got = d.download();
  for (int q = 0; q < p; ++q) EXPECT_EQ(got[static_cast<size_t>(q * n + 3)], static_cast<float>(q * 1000 + 3));
  if (p > 1) {
    const int wrong = (r + 1) % p;
    EXPECT_EQ(gpu::nccl::all_gather(d.get() + wrong * n, d.get(), static_cast<size_t>(n), DType::kF32, comm, nullptr),
              Result::kInvalidArgument);
  }
  NCCL_CHECK(gpu::nccl::comm_destroy(comm));
}

// Catches: the emulator silently completing a pattern that deadlocks on GPUs (every rank
// sends to its successor outside a group), while an ungrouped send matched by a receive works.
TEST(EmulatedNccl, UngroupedRingIsReportedAsDeadlock) {
  if (!gpu::kEmulated) GTEST_SKIP() << "emulator-only checks";
  using gpu::nccl::Result;
  const int r = world_rank(), p = world_size(), n = 32;
  DeviceBuffer<float> buf(std::vector<float>(n, static_cast<float>(r))), in(n);
  {
    gpu::nccl::Comm comm;
    NCCL_CHECK(gpu::nccl::comm_init_from_mpi(&comm, MPI_COMM_WORLD));
    if (r == 0) NCCL_CHECK(gpu::nccl::send(buf.get(), n, DType::kF32, 1, comm, nullptr));
    if (r == 1) NCCL_CHECK(gpu::nccl::recv(in.get(), n, DType::kF32, 0, comm, nullptr));
    if (r == 1) {
      EXPECT_EQ(in.download()[5], 0.0f);
    }
    NCCL_CHECK(gpu::nccl::comm_destroy(comm));
  }
  gpu::nccl::set_p2p_timeout_s(2.0);
  gpu::nccl::Comm comm;
  NCCL_CHECK(gpu::nccl::comm_init_from_mpi(&comm, MPI_COMM_WORLD));
  const Result res = gpu::nccl::send(buf.get(), n, DType::kF32, (r + 1) % p, comm, nullptr);
  EXPECT_EQ(res, Result::kInvalidUsage);
  EXPECT_NE(gpu::nccl::last_error_detail().find("deadlock"), std::string::npos) << gpu::nccl::last_error_detail();
  MPI_Barrier(MPI_COMM_WORLD);
  NCCL_CHECK(gpu::nccl::comm_destroy(comm));
  gpu::nccl::set_p2p_timeout_s(20.0);
}

}  // namespace
}  // namespace ringtrain::test
