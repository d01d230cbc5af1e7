// CPU attention microbenchmark: flash attention forward+backward (b=1, h=8, d=64 by default)
// at several sequence lengths, causal and not, beside the sgemm rate of the same machine in the
// same run (the ceiling). Times are the best of --reps wall-clock runs; cpu_s is the process CPU
// time of the best total (all threads), which stays meaningful on a shared, loaded machine. FLOPs counted as FlashAttention counts them: forward 4 b h s^2 d,
// backward 2.5x that, causal halved. Each row also reports the max error of sampled output rows
// against the double-precision reference.
//
//   bench_attention_cpu [--seq 1024,2048,4096] [--threads 1] [--heads 8] [--kv-heads 8]
//                       [--dim 64] [--reps 3]
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
#include "kernels/gemm.h"

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

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> seqs = {1024, 2048, 4096};
  int threads = 1, h = 8, h_kv = -1, d = 64, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seq")) seqs = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--heads")) h = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--kv-heads")) h_kv = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dim")) d = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
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
      ringtrain::AttentionArgs a;
      a.b = 1;
      a.s_q = a.s_k = s;
      a.h = h;
      a.h_kv = h_kv;
      a.d = d;
      a.causal = causal;
      const size_t n = static_cast<size_t>(s) * h * d, nl = static_cast<size_t>(h) * s;
      const size_t nkv = static_cast<size_t>(s) * h_kv * d;
      std::mt19937 gen(1234 + s);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> q(n), k(nkv), v(nkv), dout(n), out(n), lse(nl), delta(nl), dq(n),
          dk(nkv), dv(nkv);
      for (auto* x : {&q, &k, &v, &dout})
        for (auto& e : *x) e = nd(gen);
      double best_f = 1e30, best_b = 1e30, best_total = 1e30, cpu_of_best = 0.0;
      for (int r = 0; r < reps; ++r) {
        std::fill(dq.begin(), dq.end(), 0.0f);
        std::fill(dk.begin(), dk.end(), 0.0f);
        std::fill(dv.begin(), dv.end(), 0.0f);
        const std::clock_t c0 = std::clock();
        auto t0 = Clock::now();
        ringtrain::attention_forward(a, q.data(), k.data(), v.data(), out.data(), lse.data());
        const double tf = seconds_since(t0);
        best_f = std::min(best_f, tf);
        t0 = Clock::now();
        ringtrain::attention_backward_delta(a, out.data(), dout.data(), delta.data());
        ringtrain::attention_backward(a, q.data(), k.data(), v.data(), dout.data(), lse.data(),
                                      delta.data(), dq.data(), dk.data(), dv.data());
        const double tb = seconds_since(t0);
        best_b = std::min(best_b, tb);
        if (tf + tb < best_total) {
          best_total = tf + tb;
          cpu_of_best = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
        }
      }
      // correctness: a few query rows (all heads) against the double reference
      double max_err = 0.0;
      std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
      for (int row : {0, s / 3, s - 1}) {
        ringtrain::AttentionArgs ar = a;
        ar.s_q = 1;
        int32_t qp = row;
        ar.q_pos = &qp;
        std::vector<double> o(static_cast<size_t>(h) * d);
        ringtrain::attention_reference_forward(ar, qd.data() + static_cast<size_t>(row) * h * d,
                                               kd.data(), vd.data(), o.data(), nullptr);
        for (size_t c = 0; c < o.size(); ++c)
          max_err = std::max(max_err, std::fabs(o[c] - out[static_cast<size_t>(row) * h * d + c]));
      }
      const double fwd_flops = 4.0 * s * static_cast<double>(s) * h * d * (causal ? 0.5 : 1.0);
      const double total = best_f + best_b;
      const double gflops = 3.5 * fwd_flops / total * 1e-9;
      std::printf("%-7d %-7s %10.4f %10.4f %10.4f %10.4f %10.1f %8.0f%% %12.2e\n", s,
                  causal ? "yes" : "no", best_f, best_b, total, cpu_of_best, gflops,
                  100.0 * gflops / g2048, max_err);
    }
  return 0;
}
