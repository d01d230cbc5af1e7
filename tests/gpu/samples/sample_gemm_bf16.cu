// A tiled bf16 GEMM through the GPU layer, the pattern the attention kernels build on:
// 64x64 output tiles per block of 4 warps (each warp 32x32 = 2 x 4 mma tiles), K in steps of
// 32 staged through shared memory with cp.async double buffering, A fragments through
// ldmatrix.x4, B fragments through ldmatrix.x4.trans from row-major [k][n], fp32 accumulators.
// Shared rows are padded by 8 elements (16 bytes) so rows stay 16-byte aligned for ldmatrix and
// cp.async while consecutive rows fall in different banks.
#include "src/device/kernel.h"
#include "tests/gpu/samples/samples.h"

namespace ringtrain::test {

namespace {
constexpr int kBM = 64, kBN = 64, kBK = 32;
constexpr int kLdA = kBK + 8, kLdB = kBN + 8;  // padded shared row lengths (elements)
static_assert(kSampleGemmSmemBytes == 2 * (kBM * kLdA + kBK * kLdB) * 2, "smem layout");
}  // namespace

// static-check: gemm_bf16_kernel smem=0 threads=128 hmma
template <bool kVec, bool kStageBarrier = true>
__global__ void __launch_bounds__(128) gemm_bf16_kernel(const __nv_bfloat16* A, const __nv_bfloat16* B, float* C,
                                                        int M, int N, int K) {
  __nv_bfloat16* As = gpu::dynamic_smem<__nv_bfloat16>();  // [2][kBM][kLdA]
  __nv_bfloat16* Bs = As + 2 * kBM * kLdA;                 // [2][kBK][kLdB]
  const int t = threadIdx.x, lane = t % 32, warp = t / 32, wm = warp / 2, wn = warp % 2;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  const int k_tiles = (K + kBK - 1) / kBK;
  const __nv_bfloat16 zero = __float2bfloat16(0.0f);

  // One 8-element (16-byte) chunk of a tile: cp.async with zero fill past the matrix edge, or
  // plain loads when rows are not 16-byte aligned.
  auto load_chunk = [&](__nv_bfloat16* dst, const __nv_bfloat16* mat, int ld, int row, int rows, int col, int cols) {
    if constexpr (kVec) {
      const int valid = row < rows ? max(0, min(8, cols - col)) : 0;
      gpu::cp_async<16>(dst, valid > 0 ? mat + static_cast<size_t>(row) * ld + col : mat, valid * 2);
    } else {
      for (int i = 0; i < 8; ++i)
        dst[i] = (row < rows && col + i < cols) ? mat[static_cast<size_t>(row) * ld + col + i] : zero;
    }
  };
  auto load_tile = [&](int stage, int kt) {
    const int k0 = kt * kBK;
    for (int c = t; c < kBM * kBK / 8; c += 128) {
      const int r = c / (kBK / 8), col = (c % (kBK / 8)) * 8;
      load_chunk(As + (stage * kBM + r) * kLdA + col, A, K, m0 + r, M, k0 + col, K);
    }
    for (int c = t; c < kBK * kBN / 8; c += 128) {
      const int r = c / (kBN / 8), col = (c % (kBN / 8)) * 8;
      load_chunk(Bs + (stage * kBK + r) * kLdB + col, B, N, k0 + r, K, n0 + col, N);
    }
  };

  float acc[2][4][4];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  load_tile(0, 0);
  gpu::cp_async_commit();
  for (int kt = 0; kt < k_tiles; ++kt) {
    if (kt + 1 < k_tiles) {
      load_tile((kt + 1) & 1, kt + 1);  // the next tile streams in while this one is used
      gpu::cp_async_commit();
      gpu::cp_async_wait<1>();
    } else {
      gpu::cp_async_wait<0>();
    }
    __syncthreads();
    const __nv_bfloat16* as = As + (kt & 1) * kBM * kLdA;
    const __nv_bfloat16* bs = Bs + (kt & 1) * kBK * kLdB;
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t a[2][4], b[4][2];
      for (int mt = 0; mt < 2; ++mt)
        gpu::ldmatrix_x4(a[mt], as + (wm * 32 + mt * 16 + lane % 16) * kLdA + ks * 16 + (lane / 16) * 8);
      for (int np = 0; np < 2; ++np) {
        // Matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
        uint32_t r[4];
        gpu::ldmatrix_x4_trans(r, bs + (ks * 16 + lane % 8 + ((lane / 8) & 1) * 8) * kLdB + wn * 32 + np * 16 + (lane / 16) * 8);
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
      }
      for (int mt = 0; mt < 2; ++mt)
        for (int nt = 0; nt < 4; ++nt) gpu::mma_m16n8k16_bf16(acc[mt][nt], a[mt], b[nt], acc[mt][nt]);
    }
    if constexpr (kStageBarrier) __syncthreads();  // the next iteration's loads overwrite this stage
  }

  for (int mt = 0; mt < 2; ++mt)
    for (int nt = 0; nt < 4; ++nt)
      for (int i = 0; i < 4; ++i) {
        const int r = m0 + wm * 32 + mt * 16 + lane / 4 + (i >= 2 ? 8 : 0);
        const int c = n0 + wn * 32 + nt * 8 + 2 * (lane % 4) + (i & 1);
        if (r < M && c < N) C[static_cast<size_t>(r) * N + c] = acc[mt][nt][i];
      }
}

gpu::Status sample_gemm_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c, int m, int n, int k, gpu::Stream s,
                             bool skip_stage_barrier) {
  const dim3 grid((n + kBN - 1) / kBN, (m + kBM - 1) / kBM);
  if (k % 8 == 0 && n % 8 == 0 && skip_stage_barrier)
    return gpu::launch(gemm_bf16_kernel<true, false>, grid, 128, kSampleGemmSmemBytes, s, a, b, c, m, n, k);
  if (k % 8 == 0 && n % 8 == 0)
    return gpu::launch(gemm_bf16_kernel<true>, grid, 128, kSampleGemmSmemBytes, s, a, b, c, m, n, k);
  return gpu::launch(gemm_bf16_kernel<false>, grid, 128, kSampleGemmSmemBytes, s, a, b, c, m, n, k);
}

}  // namespace ringtrain::test
