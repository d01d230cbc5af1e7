// Ring attention under mpirun (-np cp): how much of the ring's time is spent waiting on
// communication. Each rank holds its zigzag shard of one sequence (b=1), runs
// context_attention_forward + backward over the cp ring, and the ring is handed a
// CountingCommunicator (counting_communicator.h) around the mesh's ring communicator, which
// times every wait() on a pending ring transfer: that is the time the rank could not hide
// behind its own compute. Then the same rank runs the compute alone: its queries against each
// block it would have visited (the same positions, the same kernel calls, no transfers), so
//   wait fraction = wait / ring total,   overhead = ring total / compute alone - 1.
// Prints one JSON line (rank 0): the max over ranks of each time, best of --reps.
//
//   mpirun -np 4 bench_steps_ring_time [--seq 16384] [--heads 4] [--kv-heads 2] [--dim 16]
//                                      [--threads 1] [--reps 2]
#include <cblas.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/steps/counting_communicator.h"
#include "kernels/attention.h"
#include "kernels/backend.h"
#include "kernels/cpu/ops_cpu.h"
#include "parallel/context_attention.h"
#include "parallel/mesh.h"
#include "parallel/zigzag.h"
#include "src/core/error.h"
#include "src/core/process.h"

using namespace ringtrain;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int run(int argc, char** argv) {
  int seq = 16384, h = 4, h_kv = 2, d = 16, threads = 1, reps = 2;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) input_error("ring_time: ", argv[i], " needs a value");
    const int v = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seq")) seq = v;
    else if (!std::strcmp(argv[i], "--heads")) h = v;
    else if (!std::strcmp(argv[i], "--kv-heads")) h_kv = v;
    else if (!std::strcmp(argv[i], "--dim")) d = v;
    else if (!std::strcmp(argv[i], "--threads")) threads = v;
    else if (!std::strcmp(argv[i], "--reps")) reps = v;
    else input_error("ring_time: unknown option ", argv[i]);
  }
  const int cp = world_size();
  RT_INPUT_CHECK(seq % (2 * cp) == 0, "ring_time: --seq must be divisible by 2 * ranks");
  RT_INPUT_CHECK(h >= 1 && h_kv >= 1 && h % h_kv == 0 && d >= 1 && threads >= 1 && reps >= 1,
                 "ring_time: bad --heads/--kv-heads/--dim/--threads/--reps");
  Mesh mesh(MPI_COMM_WORLD, MeshShape{1, cp, 1, 1});
  openblas_set_num_threads(threads);
  attention_set_cpu_threads(threads);

  const Zigzag zz{seq, cp};
  bench::CountingCommunicator ring(mesh.cp_ring());
  ContextAttention ctx;
  ctx.ring = &ring;
  for (int r = 0; r < cp; ++r) ctx.member_positions.push_back(zz.positions(r));
  auto backend = make_cpu_backend(Precision::kF32);
  context_attention_prepare(ctx, *backend);

  const int s = zz.local_len(), me = mesh.coord().cp;
  const LocalAttentionShape shape{1, s, h, h_kv, d};
  const size_t nq = static_cast<size_t>(s) * h * d, nkv = static_cast<size_t>(s) * h_kv * d;
  std::mt19937 gen(99 + static_cast<unsigned>(me));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(nq), k(nkv), v(nkv), dout(nq), out(nq), dq(nq), dk(nkv), dv(nkv);
  for (auto* x : {&q, &k, &v, &dout})
    for (float& e : *x) e = nd(gen);

  double best_ring = 1e30, best_wait = 0.0, best_alone = 1e30;
  for (int r = -1; r < reps; ++r) {  // r = -1: untimed warm-up
    ring.reset();
    MPI_Barrier(mesh.world_comm());
    const auto t0 = Clock::now();
    ContextAttentionSaved saved;
    context_attention_forward(ctx, shape, q.data(), k.data(), v.data(), out.data(), &saved);
    context_attention_backward(ctx, shape, q.data(), k.data(), v.data(), out.data(), dout.data(), saved, dq.data(),
                               dk.data(), dv.data());
    const double total = since(t0), wait = ring.total().wait_s;

    // The same rank's compute without a ring: its queries against every member's block
    // (positions of that member; this rank's own K/V values, the work is the same).
    std::vector<float> o(nq), l(static_cast<size_t>(h) * s), delta(static_cast<size_t>(h) * s);
    MPI_Barrier(mesh.world_comm());
    const auto t1 = Clock::now();
    for (int m = 0; m < cp; ++m) {
      AttentionArgs a;
      a.s_q = a.s_k = s;
      a.h = h;
      a.h_kv = h_kv;
      a.d = d;
      a.q_pos = ctx.member_positions[static_cast<size_t>(me)].data();
      a.k_pos = ctx.member_positions[static_cast<size_t>(m)].data();
      if (*std::min_element(a.k_pos, a.k_pos + s) > *std::max_element(a.q_pos, a.q_pos + s))
        continue;  // fully masked: the ring skips it too
      attention_forward(a, q.data(), k.data(), v.data(), o.data(), l.data());
      attention_backward_delta(a, o.data(), dout.data(), delta.data());
      attention_backward(a, q.data(), k.data(), v.data(), dout.data(), l.data(), delta.data(), dq.data(), dk.data(),
                         dv.data());
    }
    const double alone = since(t1);
    if (r < 0) continue;
    double t[3] = {total, wait, alone};
    MPI_Allreduce(MPI_IN_PLACE, t, 3, MPI_DOUBLE, MPI_MAX, mesh.world_comm());
    if (t[0] < best_ring) {
      best_ring = t[0];
      best_wait = t[1];
    }
    best_alone = std::min(best_alone, t[2]);
  }
  const bench::CommCounts ex = ring.counts(bench::kExchange);
  if (mesh.rank() == 0) {
    std::printf(
        "{\"what\":\"ring\",\"cp\":%d,\"seq\":%d,\"h\":%d,\"h_kv\":%d,\"d\":%d,\"threads\":%d,"
        "\"ring_s\":%.5f,\"wait_s\":%.5f,\"wait_frac\":%.4f,\"compute_alone_s\":%.5f,\"overhead\":%.4f,"
        "\"exchanges\":%lld,\"sent_bytes\":%lld}\n",
        cp, seq, h, h_kv, d, threads, best_ring, best_wait, best_ring > 0 ? best_wait / best_ring : 0.0, best_alone,
        best_alone > 0 ? best_ring / best_alone - 1.0 : 0.0, static_cast<long long>(ex.calls),
        static_cast<long long>(ex.bytes));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  return run_guarded([&] { return run(argc, argv); });
}
