// RoPE of one input on the CPU backend and on the CUDA backend (the emulated device in CI),
// forward and backward, for tests/hf/rope_reference.py to compare with transformers.
//
//   rope_dump DIR TOKENS HEADS HEAD_DIM THETA TYPE FACTOR ORIGINAL LOW HIGH BETA_FAST BETA_SLOW
//             ATTENTION TRUNCATE
// reads DIR/x.bin (fp32 [tokens, heads, head_dim]) and DIR/pos.bin (int32 [tokens]); writes
// DIR/inv_freq.bin (fp32 [head_dim/2], then the attention scaling), DIR/cpu_fwd.bin,
// DIR/cpu_bwd.bin and, with the CUDA backend, DIR/cuda_fwd.bin, DIR/cuda_bwd.bin. Exits 1 when
// the two backends differ: in any bit on the emulated device (the same frequencies, fp32
// formulas and libm), beyond kF32 on a real one (its sincosf is not glibc's).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/gpu_runtime.h"
#include "kernels/rope.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "tests/tolerance.h"
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
#include "kernels/cuda/backend_cuda.h"
#endif

namespace ringtrain {
namespace {

template <typename T>
std::vector<T> read_all(const std::string& path, size_t n) {
  std::vector<T> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(T)));
  RT_INPUT_CHECK(f.good(), "cannot read ", n, " values from ", path);
  return v;
}

void write_all(const std::string& path, const void* p, size_t bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(p), static_cast<std::streamsize>(bytes));
  RT_INPUT_CHECK(f.good(), "cannot write ", path);
}

RopeType parse_type(const std::string& t) {
  if (t == "none") return RopeType::kNone;
  if (t == "linear") return RopeType::kLinear;
  if (t == "llama3") return RopeType::kLlama3;
  if (t == "yarn") return RopeType::kYarn;
  input_error("unknown rope type ", t);
}

// Forward then backward of x on `be`; returns {y, dx of dy = x}.
std::pair<std::vector<float>, std::vector<float>> run_on(Backend& be, RopeArgs a, const std::vector<float>& x,
                                                         const std::vector<int32_t>& pos) {
  const size_t n = x.size();
  Tensor dx = be.alloc(static_cast<int64_t>(n));
  Tensor dp = be.alloc(static_cast<int64_t>(pos.size()), DType::kI32);
  be.upload(dx.data<float>(), x.data(), n * sizeof(float));
  be.upload(dp.data<int32_t>(), pos.data(), pos.size() * sizeof(int32_t));
  a.positions = dp.data<int32_t>();
  std::pair<std::vector<float>, std::vector<float>> out{std::vector<float>(n), std::vector<float>(n)};
  be.rope_forward(a, dx.f32());
  be.download(out.first.data(), dx.f32(), n * sizeof(float));
  be.upload(dx.data<float>(), x.data(), n * sizeof(float));
  be.rope_backward(a, dx.f32());
  be.download(out.second.data(), dx.f32(), n * sizeof(float));
  return out;
}

int run(int argc, char** argv) {
  RT_INPUT_CHECK(argc == 15, "usage: rope_dump DIR TOKENS HEADS HEAD_DIM THETA TYPE FACTOR ORIGINAL LOW HIGH "
                             "BETA_FAST BETA_SLOW ATTENTION TRUNCATE");
  const std::string dir = argv[1];
  RopeArgs a;
  a.tokens = std::stoi(argv[2]);
  a.heads = std::stoi(argv[3]);
  a.head_dim = std::stoi(argv[4]);
  a.theta = std::stod(argv[5]);
  a.scaling.type = parse_type(argv[6]);
  a.scaling.factor = std::stod(argv[7]);
  a.scaling.original_max_positions = std::stoi(argv[8]);
  a.scaling.low_freq_factor = std::stod(argv[9]);
  a.scaling.high_freq_factor = std::stod(argv[10]);
  a.scaling.beta_fast = std::stod(argv[11]);
  a.scaling.beta_slow = std::stod(argv[12]);
  a.scaling.attention_factor = std::stod(argv[13]);
  a.scaling.truncate = std::string(argv[14]) == "1";
  const size_t n = static_cast<size_t>(a.tokens) * static_cast<size_t>(a.heads) * static_cast<size_t>(a.head_dim);
  const std::vector<float> x = read_all<float>(dir + "/x.bin", n);
  const std::vector<int32_t> pos = read_all<int32_t>(dir + "/pos.bin", static_cast<size_t>(a.tokens));

  RopeFrequencies fr = rope_frequencies(a.head_dim, a.theta, a.scaling);
  fr.inv_freq.push_back(fr.attention_scaling);
  write_all(dir + "/inv_freq.bin", fr.inv_freq.data(), fr.inv_freq.size() * sizeof(float));

  auto cpu = make_cpu_backend(Precision::kF32);
  const auto [cf, cb] = run_on(*cpu, a, x, pos);
  write_all(dir + "/cpu_fwd.bin", cf.data(), n * sizeof(float));
  write_all(dir + "/cpu_bwd.bin", cb.data(), n * sizeof(float));
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
  auto gpu = make_cuda_backend(Precision::kF32, 0);
  const auto [gf, gb] = run_on(*gpu, a, x, pos);
  write_all(dir + "/cuda_fwd.bin", gf.data(), n * sizeof(float));
  write_all(dir + "/cuda_bwd.bin", gb.data(), n * sizeof(float));
  const GpuRuntime* rt = gpu_runtime();
  const bool emulated = rt != nullptr && rt->emulated;
  if (emulated) {
    for (size_t i = 0; i < n; ++i) {
      if (std::memcmp(&cf[i], &gf[i], sizeof(float)) != 0 || std::memcmp(&cb[i], &gb[i], sizeof(float)) != 0) {
        std::fprintf(stderr, "rope_dump: CPU and CUDA differ at element %zu: forward %.9g vs %.9g, backward %.9g vs %.9g\n",
                     i, cf[i], gf[i], cb[i], gb[i]);
        return 1;
      }
    }
  } else {
    for (const std::string& why : {test::compare(gf.data(), cf.data(), static_cast<int64_t>(n), test::kF32, "forward"),
                                   test::compare(gb.data(), cb.data(), static_cast<int64_t>(n), test::kF32, "backward")})
      if (!why.empty()) {
        std::fprintf(stderr, "rope_dump: CUDA vs CPU: %s\n", why.c_str());
        return 1;
      }
  }
  std::printf("rope_dump: CPU and CUDA (%s) %s on %zu values, forward and backward\n", gpu->describe().c_str(),
              emulated ? "bitwise equal" : "equal within kF32", n);
#else
  std::printf("rope_dump: CPU only (built without the CUDA backend)\n");
#endif
  return 0;
}

}  // namespace
}  // namespace ringtrain

int main(int argc, char** argv) {
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
  ringtrain::register_cuda_runtime();
#endif
  ringtrain::MpiSession mpi(&argc, &argv);
  return ringtrain::run_guarded([&] { return ringtrain::run(argc, argv); });
}
