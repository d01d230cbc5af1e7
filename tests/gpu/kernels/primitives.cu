// Kernels that exercise the GPU layer's primitives one at a time (tests/gpu/test_primitives.cpp).
#include "tests/gpu/kernels/primitives.h"

#include "src/device/kernel.h"

namespace ringtrain::test {

using gpu::dynamic_smem;

template <int kCount, bool kTrans>
__global__ void ldmatrix_dump_kernel(const uint16_t* mats, uint32_t* out) {
  uint16_t* s = dynamic_smem<uint16_t>();
  const int lane = threadIdx.x;
  for (int i = lane; i < kCount * 64; i += 32) s[i] = mats[i];
  __syncwarp();
  const int l = lane % (8 * kCount);  // lanes past 8 * count give addresses that are ignored
  const uint16_t* row = s + (l / 8) * 64 + (l % 8) * 8;
  uint32_t r[kCount];
  if constexpr (kCount == 1) {
    if constexpr (kTrans) gpu::ldmatrix_x1_trans(r, row); else gpu::ldmatrix_x1(r, row);
  } else if constexpr (kCount == 2) {
    if constexpr (kTrans) gpu::ldmatrix_x2_trans(r, row); else gpu::ldmatrix_x2(r, row);
  } else {
    if constexpr (kTrans) gpu::ldmatrix_x4_trans(r, row); else gpu::ldmatrix_x4(r, row);
  }
  for (int m = 0; m < kCount; ++m) out[lane * kCount + m] = r[m];
}

gpu::Status launch_ldmatrix_dump(int count, bool trans, const uint16_t* mats, uint32_t* out) {
  const size_t smem = static_cast<size_t>(count) * 64 * sizeof(uint16_t);
  if (count == 1) return trans ? gpu::launch(ldmatrix_dump_kernel<1, true>, 1, 32, smem, nullptr, mats, out)
                               : gpu::launch(ldmatrix_dump_kernel<1, false>, 1, 32, smem, nullptr, mats, out);
  if (count == 2) return trans ? gpu::launch(ldmatrix_dump_kernel<2, true>, 1, 32, smem, nullptr, mats, out)
                               : gpu::launch(ldmatrix_dump_kernel<2, false>, 1, 32, smem, nullptr, mats, out);
  return trans ? gpu::launch(ldmatrix_dump_kernel<4, true>, 1, 32, smem, nullptr, mats, out)
               : gpu::launch(ldmatrix_dump_kernel<4, false>, 1, 32, smem, nullptr, mats, out);
}

__device__ inline uint32_t pack_bits(uint16_t lo, uint16_t hi) {
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

template <bool kBf16>
__global__ void mma_kernel(int b_mode, const uint16_t* A, const uint16_t* B, const float* C, float* D) {
  uint16_t* As = dynamic_smem<uint16_t>();  // [16][16]
  uint16_t* Bs = As + 256;                  // [16][8]  (k-major)
  uint16_t* Bt = Bs + 128;                  // [8][16]  (n-major)
  const int lane = threadIdx.x, g = lane >> 2, tig = lane & 3;
  for (int i = lane; i < 256; i += 32) As[i] = A[i];
  for (int i = lane; i < 128; i += 32) {
    Bs[i] = B[i];
    Bt[(i % 8) * 16 + i / 8] = B[i];
  }
  __syncwarp();
  uint32_t a[4], b[2];
  if (b_mode == 0) {
    // PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point type".
    a[0] = pack_bits(A[g * 16 + 2 * tig], A[g * 16 + 2 * tig + 1]);
    a[1] = pack_bits(A[(g + 8) * 16 + 2 * tig], A[(g + 8) * 16 + 2 * tig + 1]);
    a[2] = pack_bits(A[g * 16 + 2 * tig + 8], A[g * 16 + 2 * tig + 9]);
    a[3] = pack_bits(A[(g + 8) * 16 + 2 * tig + 8], A[(g + 8) * 16 + 2 * tig + 9]);
    b[0] = pack_bits(B[(2 * tig) * 8 + g], B[(2 * tig + 1) * 8 + g]);
    b[1] = pack_bits(B[(2 * tig + 8) * 8 + g], B[(2 * tig + 9) * 8 + g]);
  } else {
    gpu::ldmatrix_x4(a, As + (lane % 16) * 16 + (lane / 16) * 8);
    if (b_mode == 1)
      gpu::ldmatrix_x2_trans(b, Bs + (lane % 16) * 8);
    else
      gpu::ldmatrix_x2(b, Bt + (lane % 8) * 16 + ((lane / 8) % 2) * 8);
  }
  const float c[4] = {C[g * 8 + 2 * tig], C[g * 8 + 2 * tig + 1], C[(g + 8) * 8 + 2 * tig], C[(g + 8) * 8 + 2 * tig + 1]};
  float d[4];
  if constexpr (kBf16) gpu::mma_m16n8k16_bf16(d, a, b, c); else gpu::mma_m16n8k16_f16(d, a, b, c);
  D[g * 8 + 2 * tig] = d[0];
  D[g * 8 + 2 * tig + 1] = d[1];
  D[(g + 8) * 8 + 2 * tig] = d[2];
  D[(g + 8) * 8 + 2 * tig + 1] = d[3];
}

gpu::Status launch_mma(bool bf16, int b_mode, const uint16_t* a, const uint16_t* b, const float* c, float* d) {
  const size_t smem = (256 + 128 + 128) * sizeof(uint16_t);
  return bf16 ? gpu::launch(mma_kernel<true>, 1, 32, smem, nullptr, b_mode, a, b, c, d)
              : gpu::launch(mma_kernel<false>, 1, 32, smem, nullptr, b_mode, a, b, c, d);
}

__global__ void warp_ops_kernel(const int* in, int* out) {
  const int tid = threadIdx.x, lane = tid % 32;
  const unsigned full = 0xffffffffu;
  const int v = in[tid];
  int* o = out + tid * kWarpOps;
  o[0] = __shfl_sync(full, v, (lane * 7 + 3) % 32);
  o[1] = __shfl_up_sync(full, v, 3);
  o[2] = __shfl_down_sync(full, v, 5);
  o[3] = __shfl_xor_sync(full, v, 6);
  o[4] = __shfl_sync(full, v, 2, 8);
  o[5] = __shfl_up_sync(full, v, 1, 16);
  o[6] = __shfl_down_sync(full, v, 2, 4);
  o[7] = __shfl_xor_sync(full, v, 16, 16);
  o[8] = static_cast<int>(__ballot_sync(full, v & 1));
  o[9] = __any_sync(full, v == 5);
  o[10] = __all_sync(full, v >= 0);
  // Two halves of the warp shuffle independently, each with its own mask.
  if (lane < 16)
    o[11] = __shfl_xor_sync(0x0000ffffu, v, 1);
  else
    o[11] = __shfl_xor_sync(0xffff0000u, v, 2);
  const float f = static_cast<float>(v) * 0.5f;
  o[12] = static_cast<int>(__shfl_down_sync(full, f, 1) * 2.0f);
  if ((0x00ff00ffu >> lane) & 1u)
    o[13] = static_cast<int>(__ballot_sync(0x00ff00ffu, lane & 1));
  else
    o[13] = -1;
  o[14] = __reduce_add_sync(full, v);
  o[15] = __reduce_min_sync(full, v);
  o[16] = static_cast<int>(__reduce_max_sync(full, static_cast<unsigned>(v)));
}

gpu::Status launch_warp_ops(const int* in, int* out) { return gpu::launch(warp_ops_kernel, 1, 64, 0, nullptr, in, out); }

__global__ void atomics_kernel(int* counters, float* fsum) {
  const int tid = threadIdx.x + blockIdx.x * blockDim.x;
  atomicAdd(&counters[0], 1);
  atomicAdd(fsum, static_cast<float>(tid % 4));
  atomicMax(&counters[1], (tid * 37) % 1001);
  atomicMin(&counters[2], (tid * 37) % 1001 - 500);
  int old = counters[3], assumed;
  do {
    assumed = old;
    old = atomicCAS(&counters[3], assumed, assumed + 2);
  } while (old != assumed);
  atomicAdd(reinterpret_cast<unsigned*>(&counters[4]), 3u);
  if (tid == 77) counters[5] = atomicExch(&counters[6], 1234);
  __threadfence();
}

gpu::Status launch_atomics(int* counters, float* fsum) { return gpu::launch(atomics_kernel, 8, 128, 0, nullptr, counters, fsum); }

// out per lane (kCpOut floats): [0..3] stage-0 chunk read before any wait (undefined on a GPU,
// poison on the emulator), [4..7] stage 0 after wait<2>, [8..11] stage 1 after wait<1>,
// [12..15] stage 2 after wait<0>, [16..19] a 16-byte copy with src-size 8 (zero fill),
// [20] a 4-byte copy, [21..22] an 8-byte copy, [23] a copy with src-size 0.
__global__ void cp_async_kernel(const float* src, float* out) {
  float* s = dynamic_smem<float>();  // [3][128] stages, then 128 floats of scratch
  const int t = threadIdx.x;
  for (int st = 0; st < 3; ++st) {
    gpu::cp_async<16>(s + st * 128 + t * 4, src + st * 128 + t * 4);
    gpu::cp_async_commit();
  }
  float* o = out + t * kCpOut;
  for (int i = 0; i < 4; ++i) o[i] = s[t * 4 + i];
  gpu::cp_async_wait<2>();
  for (int i = 0; i < 4; ++i) o[4 + i] = s[t * 4 + i];
  gpu::cp_async_wait<1>();
  for (int i = 0; i < 4; ++i) o[8 + i] = s[128 + t * 4 + i];
  gpu::cp_async_wait<0>();
  for (int i = 0; i < 4; ++i) o[12 + i] = s[256 + t * 4 + i];
  float* scratch = s + 384;
  gpu::cp_async<16>(scratch + t * 4, src + t * 4, 8);
  gpu::cp_async_commit();
  gpu::cp_async_wait<0>();
  for (int i = 0; i < 4; ++i) o[16 + i] = scratch[t * 4 + i];
  __syncwarp();
  gpu::cp_async<4>(scratch + t, src + 200 + t);
  gpu::cp_async<8>(scratch + 32 + 2 * t, src + 256 + 2 * t);
  gpu::cp_async<4>(scratch + 96 + t, src, 0);
  gpu::cp_async_commit();
  gpu::cp_async_wait<0>();
  o[20] = scratch[t];
  o[21] = scratch[32 + 2 * t];
  o[22] = scratch[33 + 2 * t];
  o[23] = scratch[96 + t];
}

gpu::Status launch_cp_async(const float* src, float* out) {
  return gpu::launch(cp_async_kernel, 1, 32, (384 + 128) * sizeof(float), nullptr, src, out);
}

}  // namespace ringtrain::test
