// The shared part of bench_attention (bench/attention/): what each backend's description
// provides, and the helpers both use.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace ringtrain::bench {

AttentionArgs make_args(int b, int s, int h, int h_kv, int d, bool causal);

// One shape's inputs, N(0, 1), [b, s, h, d] and [b, s, h_kv, d], the same for every backend.
struct Inputs {
  std::vector<float> q, k, v, dout;
  Inputs(const AttentionArgs& a, unsigned seed);
};

// Max |out - reference| over every head of sample 0's query `rows`, against the
// double-precision reference (a's q_pos / q_doc, if any, replaced by the row's own). q, k, v:
// the inputs as the kernel saw them (bf16-rounded on a GPU).
double max_error(const AttentionArgs& a, const std::vector<float>& q, const std::vector<float>& k,
                 const std::vector<float>& v, const std::vector<float>& out, const std::vector<int>& rows);
inline std::vector<int> sample_rows(int s) { return {0, s / 3, s - 1}; }

struct Timing {
  double fwd = 0.0, bwd = 0.0, cpu = -1.0;  // seconds; cpu < 0: not measured
  double total() const { return fwd + bwd; }
};

struct Result {
  Timing t;
  double max_err = 0.0;
};

// What a backend brings to the shared driver (bench/attention/main.cpp).
struct DeviceBench {
  std::string ceiling_name;  // the GEMM that is the machine's ceiling
  double ceiling_gflops = 0.0;
  bool timed = true;  // false: correctness only (the emulated device)
  std::function<Result(const AttentionArgs&, int reps)> run;
};

// cpu.cpp: fp32 flash kernels with `threads` threads; the packed-documents table.
DeviceBench cpu_bench(int threads, int reps);
void packed_table(int n, int h, int h_kv, int d, int reps);
// cuda.cpp: bf16 flash kernels on device 0; false when there is none (or no GPU layer).
bool cuda_bench(int reps, DeviceBench* bench);

}  // namespace ringtrain::bench
