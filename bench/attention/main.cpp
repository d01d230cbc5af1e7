// bench_attention: attention forward+backward on either backend, in the manner of nccl-tests:
// what differs per backend is a small description (cpu.cpp, cuda.cpp: its ceiling, how to time
// one shape, how to get sampled output rows back); the sweep, the FLOP count, the correctness
// check on every run and the table are shared (main.cpp, common.cpp).
//
// FLOPs as FlashAttention counts them: forward 4 b h s^2 d, backward 2.5x that, causal halved.
// Every row checks sampled output rows of the timed inputs against the double-precision
// reference (kernels/attention_reference.h): max_err is the largest |out - reference| there.
//
//   cpu:  fp32 flash kernels (kernels/cpu). b = 1, h = 8, d = 64, seq 1024, 2048, 4096 by
//         default; best of --reps wall-clock runs, cpu_s the process CPU time of the best
//         total (all threads), which stays meaningful on a shared machine; the ceiling is
//         OpenBLAS sgemm at 2048 with the same threads. --packed N adds the packed-documents
//         table (see packed_table).
//   cuda: bf16 flash kernels (kernels/cuda) on a real device: b x s = 32k tokens, h = 16,
//         d = 64 and 128, seq 2k .. 32k; median of --reps runs by device events after a
//         warm-up; the ceiling is cuBLAS's bf16 GEMM at 8192^3. On the emulated device one
//         small shape is checked and nothing is timed (the emulator has no clock worth timing).
//         The PyTorch peer of the same shapes is bench/attention_sdpa.py.
//
//   bench_attention [--device cpu|cuda] [--seq 1024,2048] [--dim 64,128] [--heads 8]
//                   [--kv-heads 8] [--tokens 32768] [--threads 1] [--reps 3] [--packed 16384]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench/attention/attention_bench.h"

namespace {

using namespace ringtrain;
using namespace ringtrain::bench;

std::vector<int> parse_list(const char* s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

double forward_flops(const AttentionArgs& a) {
  return 4.0 * a.b * a.h * static_cast<double>(a.s_q) * a.s_k * a.d * (a.causal ? 0.5 : 1.0);
}

void usage_error(const char* what) {
  std::fprintf(stderr, "bench_attention: %s\n", what);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device = "cpu";
  std::vector<int> seqs, dims;
  bool seqs_given = false;  // --seq "" (empty): only the --packed table
  int threads = 1, h = -1, h_kv = -1, reps = -1, packed = 0, tokens = 32768;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) usage_error((std::string("option ") + argv[i] + " needs a value").c_str());
    const char* v = argv[i + 1];
    if (!std::strcmp(argv[i], "--device")) device = v;
    else if (!std::strcmp(argv[i], "--seq")) {
      seqs = parse_list(v);
      seqs_given = true;
    }
    else if (!std::strcmp(argv[i], "--dim")) dims = parse_list(v);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(v);
    else if (!std::strcmp(argv[i], "--heads")) h = std::atoi(v);
    else if (!std::strcmp(argv[i], "--kv-heads")) h_kv = std::atoi(v);
    else if (!std::strcmp(argv[i], "--tokens")) tokens = std::atoi(v);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(v);
    else if (!std::strcmp(argv[i], "--packed")) packed = std::atoi(v);
    else usage_error((std::string("unknown option ") + argv[i]).c_str());
  }
  const bool cpu = device == "cpu";
  if (!cpu && device != "cuda") usage_error("--device must be cpu or cuda");
  if (!seqs_given) seqs = cpu ? std::vector<int>{1024, 2048, 4096} : std::vector<int>{2048, 4096, 8192, 16384, 32768};
  if (dims.empty()) dims = cpu ? std::vector<int>{64} : std::vector<int>{64, 128};
  if (h < 0) h = cpu ? 8 : 16;
  if (h_kv < 0) h_kv = h;
  if (reps < 0) reps = cpu ? 3 : 10;
  if (threads < 1 || h < 1 || h_kv < 1 || h % h_kv != 0 || reps < 1 || tokens < 1)
    usage_error("need threads, heads, kv-heads (dividing heads), reps, tokens >= 1");
  if (packed > 0 && !cpu) usage_error("--packed runs on the CPU only");

  DeviceBench bench;
  if (cpu) {
    bench = cpu_bench(threads, reps);
  } else {
    if (!cuda_bench(reps, &bench)) {
      std::printf("bench_attention: no GPU here (or built without the GPU layer): nothing to run on cuda\n");
      return 0;
    }
  }
  if (!bench.timed) {  // the emulated device: one small shape, checked
    seqs = {128};
    dims = {64};
    h = h_kv = 2;
  }

  std::printf("device %s, h=%d h_kv=%d, %s of %d%s\n", device.c_str(), h, h_kv, cpu ? "best" : "median", reps,
              cpu ? (", threads " + std::to_string(threads)).c_str() : "");
  std::printf("ceiling: %s", bench.ceiling_name.c_str());
  if (bench.ceiling_gflops > 0) std::printf(": %.1f GFLOP/s", bench.ceiling_gflops);
  std::printf("\n\n%4s %6s %4s %-7s %10s %10s %10s %10s %11s %8s %10s\n", "b", "seq", "d", "causal", "fwd_s",
              "bwd_s", "total_s", "cpu_s", "GFLOP/s", "%ceil", "max_err");
  for (int d : dims)
    for (int s : seqs)
      for (bool causal : {true, false}) {
        const int b = cpu || !bench.timed ? 1 : std::max(1, tokens / s);
        const AttentionArgs a = make_args(b, s, h, h_kv, d, causal);
        const Result r = bench.run(a, reps);
        const double gflops = r.t.total() > 0 ? 3.5 * forward_flops(a) / r.t.total() * 1e-9 : 0.0;
        char fwd[16] = "-", bwd[16] = "-", total[16] = "-", cpu_s[16] = "-", rate[16] = "-", pct[16] = "-";
        if (bench.timed) {
          std::snprintf(fwd, sizeof fwd, "%.4f", r.t.fwd);
          std::snprintf(bwd, sizeof bwd, "%.4f", r.t.bwd);
          std::snprintf(total, sizeof total, "%.4f", r.t.total());
          std::snprintf(rate, sizeof rate, "%.1f", gflops);
        }
        if (r.t.cpu >= 0) std::snprintf(cpu_s, sizeof cpu_s, "%.4f", r.t.cpu);
        if (bench.ceiling_gflops > 0) std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * gflops / bench.ceiling_gflops);
        std::printf("%4d %6d %4d %-7s %10s %10s %10s %10s %11s %8s %10.2e\n", b, s, d, causal ? "yes" : "no", fwd, bwd,
                    total, cpu_s, rate, pct, r.max_err);
      }
  if (packed > 0) packed_table(packed, h, h_kv, dims.front(), reps);
  return 0;
}
