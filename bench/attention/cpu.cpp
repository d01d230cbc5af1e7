// bench_attention's CPU description: the fp32 flash kernels (kernels/cpu), best of reps
// wall-clock runs, cpu_s the process CPU time of the best total (all threads), which stays
// meaningful on a shared machine; the ceiling is OpenBLAS sgemm at 2048 with the same threads.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>

#include "bench/attention/attention_bench.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/ops_cpu.h"

namespace ringtrain::bench {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct CpuBuffers {
  std::vector<float> out, lse, delta, dq, dk, dv;
  explicit CpuBuffers(const Inputs& x, const AttentionArgs& a)
      : out(x.q.size()),
        lse(static_cast<size_t>(a.b) * a.h * a.s_q),
        delta(lse.size()),
        dq(x.q.size()),
        dk(x.k.size()),
        dv(x.v.size()) {}
};

struct CpuTiming {
  Timing t;
  double scores = 0.0;  // score entries the forward computed (the kernel's own count)
};

// Forward, delta and backward of each call in turn, each on its own inputs.
CpuTiming cpu_once(const std::vector<AttentionArgs>& calls, const std::vector<Inputs>& xs,
                   std::vector<CpuBuffers>& bs) {
  CpuTiming r;
  r.t.cpu = 0.0;
  const std::clock_t c0 = std::clock();
  for (size_t i = 0; i < calls.size(); ++i) {
    const AttentionArgs& a = calls[i];
    const Inputs& x = xs[i];
    CpuBuffers& b = bs[i];
    std::fill(b.dq.begin(), b.dq.end(), 0.0f);
    std::fill(b.dk.begin(), b.dk.end(), 0.0f);
    std::fill(b.dv.begin(), b.dv.end(), 0.0f);
    auto t0 = Clock::now();
    ringtrain::attention_forward(a, x.q.data(), x.k.data(), x.v.data(), b.out.data(), b.lse.data());
    r.t.fwd += seconds_since(t0);
    r.scores += static_cast<double>(ringtrain::cpu::attention_last_scores_computed());
    t0 = Clock::now();
    ringtrain::attention_backward_delta(a, b.out.data(), x.dout.data(), b.delta.data());
    ringtrain::attention_backward(a, x.q.data(), x.k.data(), x.v.data(), x.dout.data(), b.lse.data(),
                                  b.delta.data(), b.dq.data(), b.dk.data(), b.dv.data());
    r.t.bwd += seconds_since(t0);
  }
  r.t.cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  return r;
}

// Best of reps: the least forward, backward and total (cpu: that of the best total).
CpuTiming cpu_best(const std::vector<AttentionArgs>& calls, const std::vector<Inputs>& xs,
                   std::vector<CpuBuffers>& bs, int reps) {
  CpuTiming best;
  best.t.fwd = best.t.bwd = 1e30;
  double best_total = 1e30;
  for (int r = 0; r < reps; ++r) {
    const CpuTiming t = cpu_once(calls, xs, bs);
    best.t.fwd = std::min(best.t.fwd, t.t.fwd);
    best.t.bwd = std::min(best.t.bwd, t.t.bwd);
    if (t.t.total() < best_total) {
      best_total = t.t.total();
      best.t.cpu = t.t.cpu;
      best.scores = t.scores;
    }
  }
  return best;
}

double sgemm_gflops(int n, int reps) {
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b(a), c(a.size(), 0.0f);
  ringtrain::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    ringtrain::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * static_cast<double>(n) / best * 1e-9;
}

}  // namespace

DeviceBench cpu_bench(int threads, int reps) {
  ringtrain::attention_set_cpu_threads(threads);
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  DeviceBench d;
  d.ceiling_name = "OpenBLAS sgemm 2048, " + std::to_string(threads) + " thread(s)";
  d.ceiling_gflops = sgemm_gflops(2048, reps);
  openblas_set_num_threads(blas_threads);
  d.run = [](const AttentionArgs& a, int n_reps) {
    std::vector<Inputs> xs;
    xs.emplace_back(a, 1234u + static_cast<unsigned>(a.s_q));
    std::vector<CpuBuffers> bs;
    bs.emplace_back(xs[0], a);
    Result r;
    r.t = cpu_best({a}, xs, bs, n_reps).t;
    r.max_err = max_error(a, xs[0].q, xs[0].k, xs[0].v, bs[0].out, sample_rows(a.s_q));
    return r;
  };
  return d;
}

// One sequence of n tokens packed with documents of lognormal lengths (median 200, sigma 1.4,
// seeded: many short, a few thousands long), forward+backward (a) as one call with document
// ids, (b) as dense causal attention over all n tokens, (c) as one call per document, summed.
// Rates count useful FLOPs only, 4 h d per VISIBLE pair forward (x 3.5 with the backward), so
// (a) and (c) do the same useful work and packed / one-by-one is the cost of packing; the dense
// row shows what the document mask saves. computed/vis: score entries the forward computed
// (tiles and blocks not skipped) per visible pair.
void packed_table(int n, int h, int h_kv, int d, int reps) {
  std::mt19937 gen(4321);
  std::lognormal_distribution<double> len_dist(std::log(200.0), 1.4);
  std::vector<int> lens;
  for (int total = 0; total < n;) {
    const int len = std::min(n - total, std::max(1, static_cast<int>(std::lround(len_dist(gen)))));
    lens.push_back(len);
    total += len;
  }
  std::vector<int32_t> docs;
  double pairs = 0.0;
  for (size_t i = 0; i < lens.size(); ++i) {
    docs.insert(docs.end(), static_cast<size_t>(lens[i]), static_cast<int32_t>(i));
    pairs += 0.5 * lens[i] * (lens[i] + 1.0);
  }
  std::vector<int> sorted = lens;
  std::sort(sorted.begin(), sorted.end());
  std::printf("\npacked: %d tokens, %zu documents (lognormal, median 200, sigma 1.4): shortest %d, median %d, "
              "longest %d; %zu under 128 tokens\n",
              n, lens.size(), sorted.front(), sorted[sorted.size() / 2], sorted.back(),
              static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), 128) - sorted.begin()));
  std::printf("%-12s %8s %10s %10s %10s %10s %13s %12s %14s %10s %10s\n", "layout", "calls", "fwd_s", "bwd_s",
              "total_s", "cpu_s", "visible_pairs", "computed/vis", "useful_GFLOP/s", "vs_1by1", "max_err");

  AttentionArgs packed = make_args(1, n, h, h_kv, d, true);
  packed.q_doc = packed.k_doc = docs.data();
  const AttentionArgs dense = make_args(1, n, h, h_kv, d, true);
  std::vector<AttentionArgs> one_by_one;
  std::vector<Inputs> doc_inputs;
  std::vector<CpuBuffers> doc_buffers;
  for (size_t i = 0; i < lens.size(); ++i) {
    one_by_one.push_back(make_args(1, lens[i], h, h_kv, d, true));
    doc_inputs.emplace_back(one_by_one.back(), 99u + static_cast<unsigned>(i));
    doc_buffers.emplace_back(doc_inputs.back(), one_by_one.back());
  }
  std::vector<Inputs> whole;
  whole.emplace_back(dense, 98u);
  std::vector<CpuBuffers> whole_buffers;
  whole_buffers.emplace_back(whole[0], dense);
  const Inputs& w = whole[0];
  const CpuTiming t_docs = cpu_best(one_by_one, doc_inputs, doc_buffers, reps);
  const CpuTiming t_packed = cpu_best({packed}, whole, whole_buffers, reps);
  const double err_packed = max_error(packed, w.q, w.k, w.v, whole_buffers[0].out, {0, n / 3, n / 2, n - 1});
  const CpuTiming t_dense = cpu_best({dense}, whole, whole_buffers, reps);
  const double err_dense = max_error(dense, w.q, w.k, w.v, whole_buffers[0].out, {0, n - 1});
  double err_docs = 0.0;
  for (size_t i = 0; i < lens.size(); i += std::max<size_t>(1, lens.size() / 4)) {
    const Inputs& x = doc_inputs[i];
    err_docs = std::max(err_docs, max_error(one_by_one[i], x.q, x.k, x.v, doc_buffers[i].out, {lens[i] - 1}));
  }
  const double dense_pairs = 0.5 * n * (n + 1.0);
  auto row = [&](const char* name, size_t calls, const CpuTiming& t, double vis, double err) {
    const double useful = 3.5 * 4.0 * vis * h * d;
    std::printf("%-12s %8zu %10.4f %10.4f %10.4f %10.4f %13.3e %12.2f %14.1f %9.2fx %10.2e\n", name, calls, t.t.fwd,
                t.t.bwd, t.t.total(), t.t.cpu, vis, t.scores / (vis * h), useful / t.t.total() * 1e-9,
                t.t.total() / t_docs.t.total(), err);
  };
  row("packed", 1, t_packed, pairs, err_packed);
  row("one-by-one", lens.size(), t_docs, pairs, err_docs);
  row("dense", 1, t_dense, dense_pairs, err_dense);
}

}  // namespace ringtrain::bench
