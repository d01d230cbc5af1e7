// One causal attention forward+backward (flash kernels of kernels/attention.h) at one sequence
// length, and the machine's sgemm rate as the ceiling, printed as one JSON line so
// scripts/bench-cpu can set it beside PyTorch's (bench/steps/torch_peer.py) run for run:
//
//   {"what":"attention","impl":"ringtrain","seq":2048,"b":1,"h":8,"d":64,"causal":true,
//    "threads":2,"fwd_s":..,"bwd_s":..,"total_s":..,"gflops":..,"max_err":..,"vmhwm_mib":..}
//   {"what":"sgemm","n":1024,"gflops":..,"cpu_gflops":..}          (--sgemm 1024,2048)
//   {"what":"cpu_kernels","isa":"avx512","summary":"..."}            (first: ISA path and tiles)
//
// Times are the best of --reps runs after --warmup untimed ones; cpu_s is the least process CPU time
// (all threads) of one run, steadier than wall time on a shared machine. FLOPs as FlashAttention counts
// them: forward 4 b h s^2 d, backward 2.5x that, causal halved. max_err: three output rows
// against the double-precision reference. cpu_gflops: the same FLOPs per process CPU second,
// the steadier rate when the machine is shared.
//
//   bench_steps_attention_time [--seq 2048] [--threads 1] [--heads 8] [--dim 64]
//                              [--reps 3] [--warmup 1] [--causal 1] [--sgemm 1024,2048]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_reference.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/ops_cpu.h"

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double process_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double vmhwm_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1.0;
}

struct Rate {
  double gflops, cpu_gflops;  // by wall time and by process CPU time (all threads), best of the calls
};

// OpenBLAS's own sgemm on its own threads (openblas_set_num_threads), the machine's ceiling.
Rate sgemm_rate(int n, int reps) {
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b(a), c(a.size(), 0.0f);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double c0 = process_cpu_s();
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, since(t0));
    best_cpu = std::min(best_cpu, process_cpu_s() - c0);
  }
  const double flops = 2.0 * n * n * static_cast<double>(n);
  return {flops / best * 1e-9, flops / best_cpu * 1e-9};
}

}  // namespace

int main(int argc, char** argv) {
  int seq = 2048, threads = 1, h = 8, d = 64, reps = 3, causal = 1, warmup = 1;
  std::vector<int> sgemm_sizes;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "attention_time: %s needs a value\n", argv[i]);
      return 2;
    }
    const char* v = argv[i + 1];
    if (!std::strcmp(argv[i], "--seq")) seq = std::atoi(v);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(v);
    else if (!std::strcmp(argv[i], "--heads")) h = std::atoi(v);
    else if (!std::strcmp(argv[i], "--dim")) d = std::atoi(v);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(v);
    else if (!std::strcmp(argv[i], "--warmup")) warmup = std::atoi(v);
    else if (!std::strcmp(argv[i], "--causal")) causal = std::atoi(v);
    else if (!std::strcmp(argv[i], "--sgemm")) {
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) sgemm_sizes.push_back(std::atoi(item.c_str()));
    } else {
      std::fprintf(stderr, "attention_time: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (seq < 1 || threads < 1 || h < 1 || d < 1 || reps < 1) {
    std::fprintf(stderr, "attention_time: --seq, --threads, --heads, --dim, --reps must be >= 1\n");
    return 2;
  }
  ringtrain::attention_set_cpu_threads(threads);
  openblas_set_num_threads(threads);
  try {  // RINGTRAIN_CPU_ISA picks the kernels' path (kernels/cpu/cpu_isa.h)
    std::printf("{\"what\":\"cpu_kernels\",\"isa\":\"%s\",\"summary\":\"%s\"}\n",
                ringtrain::cpu::isa_name(ringtrain::cpu::active_isa()), ringtrain::cpu_kernels_summary(d).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_time: %s\n", e.what());
    return 2;
  }
  for (int n : sgemm_sizes) {
    const Rate r = sgemm_rate(n, 5);
    std::printf("{\"what\":\"sgemm\",\"impl\":\"openblas\",\"n\":%d,\"threads\":%d,\"gflops\":%.1f,\"cpu_gflops\":%.1f}\n",
                n, threads, r.gflops, r.cpu_gflops);
  }

  ringtrain::AttentionArgs a;
  a.b = 1;
  a.s_q = a.s_k = seq;
  a.h = a.h_kv = h;
  a.d = d;
  a.causal = causal != 0;
  const size_t n = static_cast<size_t>(seq) * h * d, nl = static_cast<size_t>(h) * seq;
  std::mt19937 gen(1234 + seq);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(n), k(n), v(n), dout(n), out(n), lse(nl), delta(nl), dq(n), dk(n), dv(n);
  for (auto* x : {&q, &k, &v, &dout})
    for (auto& e : *x) e = nd(gen);
  double best_f = 1e30, best_b = 1e30, best_total = 1e30, best_cpu = 1e30;
  for (int r = -warmup; r < reps; ++r) {  // r < 0: untimed warm-up
    std::fill(dq.begin(), dq.end(), 0.0f);
    std::fill(dk.begin(), dk.end(), 0.0f);
    std::fill(dv.begin(), dv.end(), 0.0f);
    const double c0 = process_cpu_s();
    auto t0 = Clock::now();
    ringtrain::attention_forward(a, q.data(), k.data(), v.data(), out.data(), lse.data());
    const double tf = since(t0);
    t0 = Clock::now();
    ringtrain::attention_backward_delta(a, out.data(), dout.data(), delta.data());
    ringtrain::attention_backward(a, q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(),
                                  dq.data(), dk.data(), dv.data());
    const double tb = since(t0), cpu = process_cpu_s() - c0;
    if (r < 0) continue;
    best_cpu = std::min(best_cpu, cpu);
    best_f = std::min(best_f, tf);
    best_b = std::min(best_b, tb);
    best_total = std::min(best_total, tf + tb);
  }
  double max_err = 0.0;
  std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
  for (int row : {0, seq / 3, seq - 1}) {
    ringtrain::AttentionArgs ar = a;
    ar.s_q = 1;
    int32_t qp = row;
    ar.q_pos = &qp;
    std::vector<double> o(static_cast<size_t>(h) * d);
    ringtrain::attention_reference_forward(ar, qd.data() + static_cast<size_t>(row) * h * d, kd.data(), vd.data(),
                                           o.data(), nullptr);
    for (size_t c = 0; c < o.size(); ++c)
      max_err = std::max(max_err, std::fabs(o[c] - out[static_cast<size_t>(row) * h * d + c]));
  }
  const double flops = 3.5 * 4.0 * seq * static_cast<double>(seq) * h * d * (a.causal ? 0.5 : 1.0);
  std::printf(
      "{\"what\":\"attention\",\"impl\":\"ringtrain\",\"seq\":%d,\"b\":1,\"h\":%d,\"d\":%d,\"causal\":%s,"
      "\"threads\":%d,\"fwd_s\":%.5f,\"bwd_s\":%.5f,\"total_s\":%.5f,\"cpu_s\":%.5f,\"gflops\":%.1f,\"cpu_gflops\":%.1f,"
      "\"max_err\":%.2e,"
      "\"vmhwm_mib\":%.1f}\n",
      seq, h, d, a.causal ? "true" : "false", threads, best_f, best_b, best_total, best_cpu, flops / best_total * 1e-9, flops / best_cpu * 1e-9, max_err,
      vmhwm_mib());
  return 0;
}
