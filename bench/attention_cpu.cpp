// CPU attention microbenchmark: flash attention forward+backward (b=1, h=8, d=64 by default)
// at several sequence lengths, causal and not, beside the sgemm rate of the same machine in the
// same run (the ceiling). Times are the best of --reps wall-clock runs; cpu_s is the process CPU
// time of the best total (all threads), which stays meaningful on a shared, loaded machine. FLOPs counted as FlashAttention counts them: forward 4 b h s^2 d,
// backward 2.5x that, causal halved. Each row also reports the max error of sampled output rows
// against the double-precision reference.
//
// --packed N adds a second table: one sequence of N tokens packed with documents of lognormal
// lengths (median 200, sigma 1.4, seeded: many short, a few thousands long), forward+backward
// (a) as one call with document ids, (b) as dense causal attention over all N tokens, (c) as
// one call per document, summed. Rates count useful FLOPs only, 4 h d per VISIBLE pair forward
// (x 3.5 with the backward), so (a) and (c) do the same useful work and packed / one-by-one is
// the cost of packing; the dense row shows what the document mask saves. computed/vis: score
// entries the forward computed (tiles and blocks not skipped) per visible pair.
//
//   bench_attention_cpu [--seq 1024,2048,4096] [--threads 1] [--heads 8] [--kv-heads 8]
//                       [--dim 64] [--reps 3] [--packed 16384]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_reference.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/ops_cpu.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
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

// One attention problem's inputs and outputs, [s, h, d] and [s, h_kv, d], N(0, 1) inputs.
struct Tensors {
  std::vector<float> q, k, v, dout, out, lse, delta, dq, dk, dv;
  Tensors(int s, int h, int h_kv, int d, unsigned seed) {
    const size_t n = static_cast<size_t>(s) * h * d, nl = static_cast<size_t>(h) * s;
    const size_t nkv = static_cast<size_t>(s) * h_kv * d;
    std::mt19937 gen(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto* x : {&q, &dout, &out, &dq}) x->resize(n);
    for (auto* x : {&k, &v, &dk, &dv}) x->resize(nkv);
    lse.resize(nl);
    delta.resize(nl);
    for (auto* x : {&q, &k, &v, &dout})
      for (auto& e : *x) e = nd(gen);
  }
};

struct Timing {
  double fwd = 0.0, bwd = 0.0, cpu = 0.0;
  double scores = 0.0;  // score entries the forward computed (the kernel's own count)
  double total() const { return fwd + bwd; }
};

// Forward, delta and backward of each call of `calls` in turn, each on its own tensors.
Timing run_once(const std::vector<ringtrain::AttentionArgs>& calls, std::vector<Tensors>& ts) {
  Timing t;
  const std::clock_t c0 = std::clock();
  for (size_t i = 0; i < calls.size(); ++i) {
    const ringtrain::AttentionArgs& a = calls[i];
    Tensors& x = ts[i];
    std::fill(x.dq.begin(), x.dq.end(), 0.0f);
    std::fill(x.dk.begin(), x.dk.end(), 0.0f);
    std::fill(x.dv.begin(), x.dv.end(), 0.0f);
    auto t0 = Clock::now();
    ringtrain::attention_forward(a, x.q.data(), x.k.data(), x.v.data(), x.out.data(), x.lse.data());
    t.fwd += seconds_since(t0);
    t.scores += static_cast<double>(ringtrain::cpu::attention_last_scores_computed());
    t0 = Clock::now();
    ringtrain::attention_backward_delta(a, x.out.data(), x.dout.data(), x.delta.data());
    ringtrain::attention_backward(a, x.q.data(), x.k.data(), x.v.data(), x.dout.data(), x.lse.data(),
                                  x.delta.data(), x.dq.data(), x.dk.data(), x.dv.data());
    t.bwd += seconds_since(t0);
  }
  t.cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  return t;
}

// Best of reps: the least forward, backward and total (cpu_s: that of the best total).
Timing best_of(const std::vector<ringtrain::AttentionArgs>& calls, std::vector<Tensors>& ts, int reps) {
  Timing best{1e30, 1e30, 0.0, 0.0};
  double best_total = 1e30;
  for (int r = 0; r < reps; ++r) {
    const Timing t = run_once(calls, ts);
    best.fwd = std::min(best.fwd, t.fwd);
    best.bwd = std::min(best.bwd, t.bwd);
    if (t.total() < best_total) {
      best_total = t.total();
      best.cpu = t.cpu;
      best.scores = t.scores;
    }
  }
  return best;
}

// Max |out - reference| over all heads of the given query rows (a's q_pos and q_doc, if any,
// are replaced by the row's own).
double max_error(const ringtrain::AttentionArgs& a, const Tensors& x, const std::vector<int>& rows) {
  const int hd = a.h * a.d;
  std::vector<double> qd(x.q.begin(), x.q.end()), kd(x.k.begin(), x.k.end()), vd(x.v.begin(), x.v.end());
  double err = 0.0;
  for (int row : rows) {
    ringtrain::AttentionArgs ar = a;
    ar.s_q = 1;
    int32_t qp = row;
    ar.q_pos = &qp;
    if (a.q_doc) ar.q_doc = a.q_doc + row;
    std::vector<double> o(static_cast<size_t>(hd));
    ringtrain::attention_reference_forward(ar, qd.data() + static_cast<size_t>(row) * hd, kd.data(), vd.data(),
                                           o.data(), nullptr);
    for (size_t c = 0; c < o.size(); ++c)
      err = std::max(err, std::fabs(o[c] - x.out[static_cast<size_t>(row) * hd + c]));
  }
  return err;
}

ringtrain::AttentionArgs causal_args(int s, int h, int h_kv, int d) {
  ringtrain::AttentionArgs a;
  a.s_q = a.s_k = s;
  a.h = h;
  a.h_kv = h_kv;
  a.d = d;
  return a;
}

// Packed sequence of n tokens vs dense causal vs one call per document (see the file comment).
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
  std::printf("%-12s %8s %10s %10s %10s %10s %13s %12s %14s %10s %10s\n", "layout", "calls", "fwd_s", "bwd_s", "total_s",
              "cpu_s", "visible_pairs", "computed/vis", "useful_GFLOP/s", "vs_1by1", "max_err");

  ringtrain::AttentionArgs packed = causal_args(n, h, h_kv, d);
  packed.q_doc = packed.k_doc = docs.data();
  std::vector<ringtrain::AttentionArgs> one_by_one;
  std::vector<Tensors> doc_tensors;
  for (size_t i = 0; i < lens.size(); ++i) {
    one_by_one.push_back(causal_args(lens[i], h, h_kv, d));
    doc_tensors.emplace_back(lens[i], h, h_kv, d, 99 + static_cast<unsigned>(i));
  }
  std::vector<Tensors> whole;
  whole.emplace_back(n, h, h_kv, d, 98);
  const Timing t_docs = best_of(one_by_one, doc_tensors, reps);
  const Timing t_packed = best_of({packed}, whole, reps);
  const double err_packed = max_error(packed, whole[0], {0, n / 3, n / 2, n - 1});
  const Timing t_dense = best_of({causal_args(n, h, h_kv, d)}, whole, reps);
  const double err_dense = max_error(causal_args(n, h, h_kv, d), whole[0], {0, n - 1});
  double err_docs = 0.0;
  for (size_t i = 0; i < lens.size(); i += std::max<size_t>(1, lens.size() / 4))
    err_docs = std::max(err_docs, max_error(one_by_one[i], doc_tensors[i], {lens[i] - 1}));
  const double dense_pairs = 0.5 * n * (n + 1.0);
  auto row = [&](const char* name, size_t calls, const Timing& t, double vis, double err) {
    const double useful = 3.5 * 4.0 * vis * h * d;
    std::printf("%-12s %8zu %10.4f %10.4f %10.4f %10.4f %13.3e %12.2f %14.1f %9.2fx %10.2e\n", name, calls, t.fwd,
                t.bwd, t.total(), t.cpu, vis, t.scores / (vis * h), useful / t.total() * 1e-9,
                t.total() / t_docs.total(), err);
  };
  row("packed", 1, t_packed, pairs, err_packed);
  row("one-by-one", lens.size(), t_docs, pairs, err_docs);
  row("dense", 1, t_dense, dense_pairs, err_dense);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> seqs = {1024, 2048, 4096};
  int threads = 1, h = 8, h_kv = -1, d = 64, reps = 3, packed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seq")) seqs = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--heads")) h = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--kv-heads")) h_kv = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dim")) d = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--packed")) packed = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (h_kv < 0) h_kv = h;
  if (threads < 1 || h < 1 || h_kv < 1 || h % h_kv != 0 || d < 1 || reps < 1) {
    std::fprintf(stderr, "bad options: need threads, heads, kv-heads (dividing heads), dim, reps >= 1\n");
    return 2;
  }
  ringtrain::attention_set_cpu_threads(threads);
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  const double g1024 = sgemm_gflops(1024, reps), g2048 = sgemm_gflops(2048, reps);
  openblas_set_num_threads(blas_threads);
  std::printf("threads %d (attention and sgemm), b=1 h=%d h_kv=%d d=%d, best of %d\n", threads, h,
              h_kv, d, reps);
  std::printf("sgemm 1024: %.1f GFLOP/s   sgemm 2048: %.1f GFLOP/s\n\n", g1024, g2048);
  std::printf("%-7s %-7s %10s %10s %10s %10s %10s %9s %12s\n", "seq", "causal", "fwd_s", "bwd_s",
              "total_s", "cpu_s", "GFLOP/s", "%sgemm", "max_err");

  for (int s : seqs)
    for (bool causal : {true, false}) {
      ringtrain::AttentionArgs a = causal_args(s, h, h_kv, d);
      a.causal = causal;
      std::vector<Tensors> x;
      x.emplace_back(s, h, h_kv, d, 1234 + s);
      const Timing t = best_of({a}, x, reps);
      const double max_err = max_error(a, x[0], {0, s / 3, s - 1});
      const double fwd_flops = 4.0 * s * static_cast<double>(s) * h * d * (causal ? 0.5 : 1.0);
      const double gflops = 3.5 * fwd_flops / t.total() * 1e-9;
      std::printf("%-7d %-7s %10.4f %10.4f %10.4f %10.4f %10.1f %8.0f%% %12.2e\n", s,
                  causal ? "yes" : "no", t.fwd, t.bwd, t.total(), t.cpu, gflops,
                  100.0 * gflops / g2048, max_err);
    }
  if (packed > 0) packed_table(packed, h, h_kv, d, reps);
  return 0;
}
