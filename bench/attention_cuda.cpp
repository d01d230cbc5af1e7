// CUDA flash-attention benchmark (kernels/cuda): forward TFLOP/s for b x h x s = 16x16x2k ...
// 1x16x32k (32k tokens per row of the table), head dims 64 and 128, causal and not, beside the
// cuBLAS bf16 GEMM rate of the same device in the same run (the ceiling); backward (delta, dK/dV
// and dQ passes, deterministic) likewise. FLOPs as FlashAttention counts them: forward
// 4 b h s^2 d, backward 2.5x that, halved for causal. Times: median of --reps
// runs by device events after one warm-up.
//
// Without a GPU it says so and exits 0; in the emulated build it says "emulated device: no
// timing" and exits 0 (the emulator has no clock worth timing). The PyTorch peer, the same
// shapes through scaled_dot_product_attention with its flash and cuDNN back ends, is
// bench/attention_sdpa.py; the GPU bundle (scripts/gpu-run) runs both in one session.
//
//   bench_attention_cuda [--reps 10] [--max-seq 32768]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(RINGTRAIN_GPU_CUDA) || defined(RINGTRAIN_GPU_EMULATE)
#include "kernels/cuda/attention_cuda.h"
#include "src/core/tensor.h"
#include "src/device/gpu.h"
#endif

namespace {

#if defined(RINGTRAIN_GPU_CUDA)
using namespace ringtrain;

// Median time (ms) of fn() over reps runs, timed by events on the default stream.
template <typename F>
float time_ms(int reps, F&& fn) {
  gpu::Event e0, e1;
  CUDA_CHECK(gpu::event_create(&e0));
  CUDA_CHECK(gpu::event_create(&e1));
  fn();  // warm-up
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    CUDA_CHECK(gpu::event_record(e0, nullptr));
    fn();
    CUDA_CHECK(gpu::event_record(e1, nullptr));
    CUDA_CHECK(gpu::event_synchronize(e1));
    float t = 0;
    CUDA_CHECK(gpu::event_elapsed_ms(&t, e0, e1));
    ms.push_back(t);
  }
  gpu::event_destroy(e0);
  gpu::event_destroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int run(int reps, int max_seq) {
  gpu::DeviceProps props;
  CUDA_CHECK(gpu::get_device_properties(&props, 0));
  std::printf("device: %s (sm_%d%d)\n", props.name.c_str(), props.major, props.minor);

  // Ceiling: cuBLAS bf16 GEMM 8192^3, fp32 accumulation, bf16 out.
  {
    const int n = 8192;
    void *a, *c;
    CUDA_CHECK(gpu::device_alloc(&a, size_t(n) * n * 2));
    CUDA_CHECK(gpu::device_alloc(&c, size_t(n) * n * 2));
    CUDA_CHECK(gpu::memset(a, 0, size_t(n) * n * 2));
    const float ms = time_ms(reps, [&] {
      CUDA_CHECK(gpu::gemm(nullptr, false, false, n, n, n, 1.0f, a, DType::kBF16, n, a, DType::kBF16, n, 0.0f, c,
                           DType::kBF16, n));
    });
    std::printf("cuBLAS bf16 gemm %dx%dx%d: %.1f TFLOP/s\n", n, n, n, 2.0 * n * n * double(n) / (ms * 1e-3) / 1e12);
    gpu::device_free(a);
    gpu::device_free(c);
  }

  std::printf("%4s %4s %6s %4s %-10s %10s %12s %10s %12s\n", "b", "h", "s", "d", "mask", "fwd ms", "fwd TFLOP/s", "bwd ms",
              "bwd TFLOP/s");
  const int h = 16;
  for (int d : {64, 128})
    for (int s = 2048; s <= max_seq; s *= 2) {
      const int b = std::max(1, 32768 / s);
      const size_t n = size_t(b) * s * h * d;
      __nv_bfloat16 *q, *k, *v, *o;
      __nv_bfloat16* g;
      float *lse, *delta, *dq, *dk, *dv;
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&q), n * 2));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&k), n * 2));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&v), n * 2));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&o), n * 2));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&lse), size_t(b) * h * s * 4));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&g), n * 2));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&delta), size_t(b) * h * s * 4));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&dq), n * 4));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&dk), n * 4));
      CUDA_CHECK(gpu::device_alloc(reinterpret_cast<void**>(&dv), n * 4));
      CUDA_CHECK(gpu::memset(g, 0x3C, n * 2));
      // 0x3C00 bf16 pairs: small finite values.
      CUDA_CHECK(gpu::memset(q, 0x3C, n * 2));
      CUDA_CHECK(gpu::memset(k, 0x3C, n * 2));
      CUDA_CHECK(gpu::memset(v, 0x3C, n * 2));
      for (bool causal : {false, true}) {
        AttentionArgs a;
        a.b = b;
        a.s_q = a.s_k = s;
        a.h = a.h_kv = h;
        a.d = d;
        a.causal = causal;
        const float ms = time_ms(reps, [&] { CUDA_CHECK(cuda::attention_forward_cuda(a, q, k, v, o, lse, nullptr)); });
        const float bms = time_ms(reps, [&] {
          CUDA_CHECK(cuda::attention_backward_cuda(a, q, k, v, o, g, lse, delta, dq, dk, dv, nullptr));
        });
        const double flops = 4.0 * b * h * double(s) * s * d / (causal ? 2.0 : 1.0);
        std::printf("%4d %4d %6d %4d %-10s %10.3f %12.1f %10.3f %12.1f\n", b, h, s, d, causal ? "causal" : "full", ms,
                    flops / (ms * 1e-3) / 1e12, bms, 2.5 * flops / (bms * 1e-3) / 1e12);
      }
      gpu::device_free(q);
      gpu::device_free(k);
      gpu::device_free(v);
      gpu::device_free(o);
      gpu::device_free(lse);
      gpu::device_free(g);
      gpu::device_free(delta);
      gpu::device_free(dq);
      gpu::device_free(dk);
      gpu::device_free(dv);
    }
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  int reps = 10, max_seq = 32768;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--max-seq")) max_seq = std::atoi(argv[i + 1]);
  }
#if defined(RINGTRAIN_GPU_EMULATE)
  (void)reps;
  (void)max_seq;
  std::printf("bench_attention_cuda: emulated device: no timing\n");
  return 0;
#elif defined(RINGTRAIN_GPU_CUDA)
  int count = 0;
  if (ringtrain::gpu::get_device_count(&count) != ringtrain::gpu::Status::kSuccess || count == 0) {
    std::printf("bench_attention_cuda: no GPU on this machine: no timing\n");
    return 0;
  }
  return run(reps, max_seq);
#else
  (void)reps;
  (void)max_seq;
  std::printf("bench_attention_cuda: built without the GPU layer (RINGTRAIN_GPU=off): no timing\n");
  return 0;
#endif
}
