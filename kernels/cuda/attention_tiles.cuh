// Device helpers shared by the attention forward and backward kernels (private to kernels/cuda).
#pragma once

#include <cstdint>
#include <type_traits>

#include "src/device/kernel.h"

namespace ringtrain::cuda {

// d += a b on tensor cores, m16n8k16 with fp32 accumulators, in the element type T.
template <typename T>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) gpu::mma_m16n8k16_bf16(d, a, b, d);
  else gpu::mma_m16n8k16_f16(d, a, b, d);
}

__device__ __forceinline__ uint32_t pack_float2(float lo, float hi, __nv_bfloat16*) {
  return gpu::pack2(__float2bfloat16(lo), __float2bfloat16(hi));
}
__device__ __forceinline__ uint32_t pack_float2(float lo, float hi, __half*) {
  return gpu::pack2(__float2half(lo), __float2half(hi));
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// The A fragment (m16 x k16) of columns 16j..16j+15 from the accumulators of the two m16n8
// tiles 2j (lo) and 2j+1 (hi): in the PTX ISA's mma.m16n8k16 layouts a lane holds the same
// (row, column) pairs in the C fragment of an n8 tile as in the matching half of the A
// fragment, so P (or dS) feeds the next product from registers, rounded to T.
template <typename T>
__device__ __forceinline__ void a_fragment_from_acc(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_float2(lo[0], lo[1], static_cast<T*>(nullptr));
  a[1] = pack_float2(lo[2], lo[3], static_cast<T*>(nullptr));
  a[2] = pack_float2(hi[0], hi[1], static_cast<T*>(nullptr));
  a[3] = pack_float2(hi[2], hi[3], static_cast<T*>(nullptr));
}

// c0, c1 (the n8 tiles 0 and 1) += a B, B the k16 x n16 tile at `tile` of a row-major [k][n]
// shared array with row stride ld elements (16-byte aligned rows), loaded transposed into B
// fragments by one ldmatrix.x4.trans: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
// (k 8-15, n 8-15). The step of every P V-shaped product: O += P V, dV += P^T dO, dK += dS^T Q,
// dQ += dS K.
template <typename T>
__device__ __forceinline__ void mma_acc_kn_tile(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4], const T* tile,
                                                int ld, int lane) {
  uint32_t r[4];
  gpu::ldmatrix_x4_trans(r, tile + (lane % 8 + ((lane / 8) & 1) * 8) * ld + (lane / 16) * 8);
  const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
  mma<T>(c0, a, b0);
  mma<T>(c1, a, b1);
}

}  // namespace ringtrain::cuda
