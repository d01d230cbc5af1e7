// bench_attention's CUDA description: the bf16 flash kernels (kernels/cuda) on device 0, median
// of reps runs by device events after a warm-up; the ceiling is cuBLAS's bf16 GEMM at 8192^3.
// On the emulated device: correctness only (the emulator has no clock worth timing).
#include "bench/attention/attention_bench.h"

#if defined(RINGTRAIN_GPU_CUDA) || defined(RINGTRAIN_GPU_EMULATE)
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cuda/attention_cuda.h"
#include "src/core/tensor.h"
#include "src/device/gpu.h"

namespace ringtrain::bench {
namespace {



// Median time (ms) of fn() over reps runs, timed by events on the default stream.
template <typename F>
double median_ms(int reps, F&& fn) {
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

template <typename T>
T* device_array(size_t n) {
  void* p = nullptr;
  CUDA_CHECK(gpu::device_alloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}

// bf16 copies of x on the device; x itself rounded to what the device holds.
__nv_bfloat16* upload_bf16(std::vector<float>& x) {
  std::vector<__nv_bfloat16> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    h[i] = __float2bfloat16_rn(x[i]);
    x[i] = __bfloat162float(h[i]);
  }
  __nv_bfloat16* d = device_array<__nv_bfloat16>(x.size());
  CUDA_CHECK(gpu::memcpy(d, h.data(), h.size() * sizeof(__nv_bfloat16), gpu::CopyKind::kHostToDevice));
  return d;
}

Result cuda_run(const AttentionArgs& a, int reps, bool timed) {
  Inputs x(a, 1234u + static_cast<unsigned>(a.s_q));
  const size_t n = x.q.size(), nkv = x.k.size(), nl = static_cast<size_t>(a.b) * a.h * a.s_q;
  __nv_bfloat16 *q = upload_bf16(x.q), *k = upload_bf16(x.k), *v = upload_bf16(x.v), *g = upload_bf16(x.dout);
  auto* o = device_array<__nv_bfloat16>(n);
  auto* lse = device_array<float>(nl);
  auto* delta = device_array<float>(nl);
  auto* dq = device_array<float>(n);
  auto* dk = device_array<float>(nkv);
  auto* dv = device_array<float>(nkv);
  auto forward = [&] { CUDA_CHECK(cuda::attention_forward_cuda(a, q, k, v, o, lse, nullptr)); };
  auto backward = [&] { CUDA_CHECK(cuda::attention_backward_cuda(a, q, k, v, o, g, lse, delta, dq, dk, dv, nullptr)); };
  Result r;
  if (timed) {
    r.t.fwd = median_ms(reps, forward) * 1e-3;
    r.t.bwd = median_ms(reps, backward) * 1e-3;
  } else {
    forward();
    backward();
  }
  CUDA_CHECK(gpu::device_synchronize());
  std::vector<__nv_bfloat16> oh(n);
  CUDA_CHECK(gpu::memcpy(oh.data(), o, n * sizeof(__nv_bfloat16), gpu::CopyKind::kDeviceToHost));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = __bfloat162float(oh[i]);
  r.max_err = max_error(a, x.q, x.k, x.v, out, sample_rows(a.s_q));
  for (void* p : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v), static_cast<void*>(g),
                  static_cast<void*>(o), static_cast<void*>(lse), static_cast<void*>(delta), static_cast<void*>(dq),
                  static_cast<void*>(dk), static_cast<void*>(dv)})
    gpu::device_free(p);
  return r;
}

}  // namespace

bool cuda_bench(int reps, DeviceBench* d) {
  int count = 0;
  if (gpu::get_device_count(&count) != gpu::Status::kSuccess || count == 0) return false;
#if defined(RINGTRAIN_GPU_EMULATE)
  (void)reps;
  d->timed = false;
  d->ceiling_name = "emulated device: correctness only, no timing";
#else
  gpu::DeviceProps props;
  CUDA_CHECK(gpu::get_device_properties(&props, 0));
  const int m = 8192;
  auto* a = device_array<uint16_t>(static_cast<size_t>(m) * m);
  auto* c = device_array<uint16_t>(static_cast<size_t>(m) * m);
  CUDA_CHECK(gpu::memset(a, 0, static_cast<size_t>(m) * m * 2));
  const double ms = median_ms(reps, [&] {
    CUDA_CHECK(gpu::gemm(nullptr, false, false, m, m, m, 1.0f, a, DType::kBF16, m, a, DType::kBF16, m, 0.0f, c,
                         DType::kBF16, m));
  });
  gpu::device_free(a);
  gpu::device_free(c);
  d->ceiling_name = props.name + " (sm_" + std::to_string(props.major) + std::to_string(props.minor) +
                    "), cuBLAS bf16 gemm 8192^3";
  d->ceiling_gflops = 2.0 * m * m * static_cast<double>(m) / (ms * 1e-3) * 1e-9;
#endif
  const bool timed = d->timed;
  d->run = [timed](const AttentionArgs& a, int n_reps) { return cuda_run(a, n_reps, timed); };
  return true;
}

}  // namespace ringtrain::bench
#else
namespace ringtrain::bench {
bool cuda_bench(int, DeviceBench*) { return false; }
}  // namespace ringtrain::bench
#endif
