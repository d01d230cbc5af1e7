// RoPE on a CUDA device (kernels/rope.h), every scaling type: the host's rope_frequencies (the
// CPU's) give the inverse frequencies and the attention factor, so the fp32 angles have the CPU's bits.
#include <cmath>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"
#include "src/core/error.h"
#include "src/device/kernel.h"

namespace ringtrain::cuda {

namespace {
constexpr int kRopeMaxHalf = 256;  // head_dim <= 512
}  // namespace

// (Outside the anonymous namespace so the kernel keeps external linkage: the emulator names
// kernels in its fault reports through the dynamic symbol table.)
struct OpsRopeParams {
  int64_t pairs;  // tokens * half
  int heads, half, head_dim;
  const int32_t* positions;
  float attention_scaling;
  float inv_freq[kRopeMaxHalf];
};

// One thread per (token, frequency): the angle pos * inv_freq[i] (inv_freq and the yarn
// attention scaling from the host's rope_frequencies, the CPU's, so the fp32 angle has the same
// bits), cos and sin in
// fp32 (the accurate sincosf; its large-argument reduction is the 32-byte stack frame ptxas
// reports, not a spill), then the pair (i, i + half) of every head of the token.
// static-check: ops_rope_kernel smem=0
template <bool kInverse>
__global__ void __launch_bounds__(kElemThreads) ops_rope_kernel(OpsRopeParams p, float* x) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.pairs; idx += stride) {
    const int64_t t = idx / p.half;
    const int i = static_cast<int>(idx - t * p.half);
    const float ang = static_cast<float>(p.positions[t]) * p.inv_freq[i];
    float sn, cs;
    sincosf(ang, &sn, &cs);  // one argument reduction for both
    cs *= p.attention_scaling;
    sn *= p.attention_scaling;
    float* v = x + t * p.heads * static_cast<int64_t>(p.head_dim) + i;
    for (int hh = 0; hh < p.heads; ++hh, v += p.head_dim) {
      const float x1 = v[0], x2 = v[p.half];
      if (kInverse) {
        v[0] = x1 * cs + x2 * sn;
        v[p.half] = x2 * cs - x1 * sn;
      } else {
        v[0] = x1 * cs + (-x2) * sn;
        v[p.half] = x2 * cs + x1 * sn;
      }
    }
  }
}

namespace {
template <bool kInverse>
gpu::Status rope_apply(const RopeArgs& a, float* x, gpu::Stream stream) {
  RT_CHECK(a.head_dim % 2 == 0 && a.head_dim >= 0, "cuda::rope: head_dim must be even, got ", a.head_dim);
  RT_CHECK(a.head_dim / 2 <= kRopeMaxHalf, "cuda::rope: head_dim ", a.head_dim, " above ", 2 * kRopeMaxHalf);
  RT_CHECK(a.tokens >= 0 && a.heads >= 0, "cuda::rope: bad shape ", a.tokens, " x ", a.heads);
  RT_CHECK(a.positions != nullptr || a.tokens == 0, "cuda::rope: positions are required");
  OpsRopeParams p{};
  p.half = a.head_dim / 2;
  p.heads = a.heads;
  p.head_dim = a.head_dim;
  p.pairs = static_cast<int64_t>(a.tokens) * p.half;
  p.positions = a.positions;
  if (p.pairs == 0 || a.heads == 0) return gpu::Status::kSuccess;
  const RopeFrequencies fr = rope_frequencies(a.head_dim, a.theta, a.scaling);
  for (int i = 0; i < p.half; ++i) p.inv_freq[i] = fr.inv_freq[static_cast<size_t>(i)];
  p.attention_scaling = fr.attention_scaling;
  return gpu::launch(ops_rope_kernel<kInverse>, elem_blocks(p.pairs), kElemThreads, 0, stream, p, x);
}
}  // namespace

gpu::Status rope_forward(const RopeArgs& a, float* x, gpu::Stream stream) { return rope_apply<false>(a, x, stream); }
gpu::Status rope_backward(const RopeArgs& a, float* dx, gpu::Stream stream) { return rope_apply<true>(a, dx, stream); }
}  // namespace ringtrain::cuda
