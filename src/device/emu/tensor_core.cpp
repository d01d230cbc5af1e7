// The tensor-core instructions of the emulated device, as warp-collective operations over the
// PTX ISA's fragment layouts: mma.sync m16n8k16 (bf16/f16 in, fp32 accumulate) and ldmatrix.
#include <cstdint>
#include <cstring>

#include "src/device/emu/emu_internal.h"
#include "src/device/kernel.h"

namespace ringtrain::gpu::emu {

// ---- mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 ----
// Fragment layouts from the PTX ISA, section "Matrix Fragments for mma.m16n8k16 with floating
// point type" (9.7.13.4.8 in PTX ISA 8.x): groupID = lane / 4, tig = lane % 4;
//   A (16x16, 8 elements a0..a7 in a[4], lower index in the low half):
//     row = groupID for a0,a1,a4,a5, groupID + 8 for a2,a3,a6,a7;
//     col = 2 tig + (i & 1) for a0..a3, 2 tig + (i & 1) + 8 for a4..a7;
//   B (16x8, b0..b3 in b[2]): row = 2 tig + (i & 1) (+ 8 for b2,b3), col = groupID;
//   C/D (16x8, c0..c3): row = groupID for c0,c1, groupID + 8 for c2,c3; col = 2 tig + (i & 1).
// The products of two bf16/f16 values are exact in fp32; they are accumulated onto C in k
// order, one fp32 rounding per addition (the hardware's order is unspecified).
namespace {
struct MmaIn {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};
template <bool kBf16>
float half_bits_to_float(uint32_t reg, int hi) {
  const unsigned short bits = static_cast<unsigned short>(reg >> (16 * hi));
  if constexpr (kBf16)
    return __bfloat162float(__ushort_as_bfloat16(bits));
  else
    return __half2float(__ushort_as_half(bits));
}
template <bool kBf16>
void mma_combine(const void* const* ins, void* const* outs, unsigned) {
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaIn& in = *static_cast<const MmaIn*>(ins[lane]);
    const int g = lane >> 2, tig = lane & 3;
    for (int i = 0; i < 8; ++i) {
      const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
      const int col = 2 * tig + (i & 1) + (i >= 4 ? 8 : 0);
      A[row][col] = half_bits_to_float<kBf16>(in.a[i / 2], i & 1);
    }
    for (int i = 0; i < 4; ++i) {
      const int row = 2 * tig + (i & 1) + (i >= 2 ? 8 : 0);
      B[row][g] = half_bits_to_float<kBf16>(in.b[i / 2], i & 1);
    }
    for (int i = 0; i < 4; ++i) C[i < 2 ? g : g + 8][2 * tig + (i & 1)] = in.c[i];
  }
  for (int lane = 0; lane < 32; ++lane) {
    float* d = static_cast<float*>(outs[lane]);
    const int g = lane >> 2, tig = lane & 3;
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? g : g + 8, col = 2 * tig + (i & 1);
      float acc = C[row][col];
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      d[i] = acc;
    }
  }
}
}  // namespace

void mma_m16n8k16(bool bf16, float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  MmaIn in;
  std::memcpy(in.a, a, sizeof in.a);
  std::memcpy(in.b, b, sizeof in.b);
  std::memcpy(in.c, c, sizeof in.c);
  float out[4];
  warp_collective(0xffffffffu, bf16 ? kMmaBf16 : kMmaF16, &in, out, bf16 ? &mma_combine<true> : &mma_combine<false>);
  std::memcpy(d, out, sizeof out);
}

// ---- ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16 ----
// PTX ISA, "Warp-level matrix load instruction: ldmatrix" (9.7.13.4.15 in PTX ISA 8.x): lanes
// 8i..8i+7 supply the addresses of rows 0..7 of matrix i (each row 8 x 16 bits, 16-byte
// aligned, in shared memory). Lane l receives in register i the elements (row l/4, columns
// 2(l%4) and 2(l%4)+1) of matrix i, the lower column in the low half; with .trans the
// elements (rows 2(l%4) and 2(l%4)+1, column l/4), i.e. the same fragment of the transpose.
namespace {
struct LdIn {
  const uint16_t* row;
  int count;
};
template <int kCount, bool kTrans>
void ldmatrix_combine(const void* const* ins, void* const* outs, unsigned) {
  for (int lane = 0; lane < 32; ++lane) {
    uint32_t* r = static_cast<uint32_t*>(outs[lane]);
    for (int m = 0; m < kCount; ++m) {
      auto elem = [&](int row, int col) -> uint32_t {
        return static_cast<const LdIn*>(ins[8 * m + row])->row[col];
      };
      const int g = lane >> 2, c = 2 * (lane & 3);
      r[m] = kTrans ? (elem(c, g) | (elem(c + 1, g) << 16)) : (elem(g, c) | (elem(g, c + 1) << 16));
    }
  }
}
template <int kCount>
WarpCombine ld_fn(bool trans) {
  return trans ? &ldmatrix_combine<kCount, true> : &ldmatrix_combine<kCount, false>;
}
}  // namespace

void ldmatrix(int count, bool trans, uint32_t* r, const void* row) {
  const int lane = current_lane();
  if (lane < 8 * count) {
    if (reinterpret_cast<uintptr_t>(row) % 16 != 0) kernel_fault("ldmatrix: row address is not 16-byte aligned");
    if (!shared_range_ok(row, 16)) kernel_fault("ldmatrix: row address is not inside the block's shared memory");
  }
  LdIn in{static_cast<const uint16_t*>(row), count};
  uint32_t out[4];
  WarpCombine fn = count == 1 ? ld_fn<1>(trans) : count == 2 ? ld_fn<2>(trans) : ld_fn<4>(trans);
  warp_collective(0xffffffffu, kLdmatrix + 2 * count + (trans ? 1 : 0), &in, out, fn);
  std::memcpy(r, out, sizeof(uint32_t) * static_cast<size_t>(count));
}

}  // namespace ringtrain::gpu::emu
