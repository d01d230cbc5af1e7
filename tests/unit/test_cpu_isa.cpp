// The CPU kernels' run-time choices: the ISA path (kernels/cpu/cpu_isa.h) and its override, the
// cache sizes and the attention tiles chosen from them, and each ISA's tile micro-kernels
// against a double reference on ragged shapes (every path this CPU can run, whatever
// RINGTRAIN_CPU_ISA says; the attention tests run under each path in ctest).
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/cpu_caches.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/tile_kernels.h"
#include "src/core/error.h"
#include "tolerance.h"

namespace ringtrain {
namespace {

using cpu::Isa;
using test::kF32;

// Catches: an override that ignores the variable, accepts a misspelt name, or forces a path the
// CPU cannot run (an illegal instruction later instead of an error now).
TEST(CpuIsa, EnvironmentOverride) {
  EXPECT_EQ(cpu::isa_from_env(nullptr, Isa::kAvx512), Isa::kAvx512);
  EXPECT_EQ(cpu::isa_from_env("", Isa::kAvx2), Isa::kAvx2);
  EXPECT_EQ(cpu::isa_from_env("avx2", Isa::kAvx512), Isa::kAvx2);
  EXPECT_EQ(cpu::isa_from_env("generic", Isa::kAvx512), Isa::kGeneric);
  EXPECT_EQ(cpu::isa_from_env("avx512", Isa::kAvx512), Isa::kAvx512);
  try {
    cpu::isa_from_env("avx512", Isa::kAvx2);
    ADD_FAILURE() << "forcing avx512 on an AVX2 CPU was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_NE(std::string(e.what()).find("RINGTRAIN_CPU_ISA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cpu::isa_from_env("AVX2", Isa::kAvx512), Error);
  EXPECT_THROW(cpu::isa_from_env("sse", Isa::kAvx512), Error);
  EXPECT_EQ(std::string(cpu::isa_name(Isa::kAvx2)), "avx2");
}

// Catches: a unit suffix ignored or misread (tiles sized for a cache 1024 times off).
TEST(CpuCaches, ParsesSizesAndReadsThisCpu) {
  EXPECT_EQ(cpu::parse_cache_size("48K"), 48 << 10);
  EXPECT_EQ(cpu::parse_cache_size("1024K"), 1 << 20);
  EXPECT_EQ(cpu::parse_cache_size("32M"), int64_t{32} << 20);
  EXPECT_EQ(cpu::parse_cache_size("512"), 512);
  EXPECT_EQ(cpu::parse_cache_size(""), 0);
  EXPECT_EQ(cpu::parse_cache_size("K"), 0);
  EXPECT_EQ(cpu::parse_cache_size("12Q"), 0);
  const cpu::CacheSizes& c = cpu::cpu_caches();
  if (c.source == "unknown") {
    EXPECT_EQ(c.l1d, 0);
    EXPECT_EQ(c.l2, 0);
  } else {
    EXPECT_GE(c.l1d, 4 << 10);
    EXPECT_GE(c.l2, c.l1d);
  }
}

// The rule of attention_cpu.h. Catches: tiles that outgrow L2 or the scratch buffers' maxima, a
// missing fallback for an unknown cache, unmasked tiles narrower than the masked ones.
TEST(AttentionTiles, ChosenFromL2) {
  auto eq = [](cpu::AttnTiles t, int q, int k, int qw, int kw) {
    return t.q == q && t.k == k && t.q_wide == qw && t.k_wide == kw;
  };
  // 1 MiB (Zen 4, the measured sizes), d = 64: 128 x 128 masked, 128 x 256 unmasked
  EXPECT_TRUE(eq(cpu::choose_attention_tiles(1 << 20, 64), 128, 128, 128, 256));
  // unknown: as 1 MiB
  EXPECT_TRUE(eq(cpu::choose_attention_tiles(0, 64), 128, 128, 128, 256));
  // 2 MiB (Sapphire Rapids): no larger than the maxima
  EXPECT_TRUE(eq(cpu::choose_attention_tiles(2 << 20, 64), 128, 128, 128, 256));
  // d = 128 at 1 MiB: the wide tile's K/V rows no longer fit
  EXPECT_TRUE(eq(cpu::choose_attention_tiles(1 << 20, 128), 128, 128, 128, 128));
  // 256 KiB (Skylake client)
  EXPECT_TRUE(eq(cpu::choose_attention_tiles(256 << 10, 64), 64, 64, 64, 64));
  // tiny: never below the minimum
  EXPECT_TRUE(eq(cpu::choose_attention_tiles(16 << 10, 256), 32, 32, 32, 32));
  for (int64_t l2 : {int64_t{64} << 10, int64_t{512} << 10, int64_t{1} << 20, int64_t{32} << 20})
    for (int d : {1, 16, 64, 128, 256}) {
      const cpu::AttnTiles t = cpu::choose_attention_tiles(l2, d);
      SCOPED_TRACE(::testing::Message() << "l2=" << l2 << " d=" << d);
      EXPECT_EQ(t.q, t.k);
      EXPECT_EQ(t.q_wide, t.q);
      EXPECT_TRUE(t.k_wide == t.k || t.k_wide == 2 * t.k);
      EXPECT_LE(t.q, cpu::kAttnTileQMax);
      EXPECT_LE(t.k_wide, cpu::kAttnTileKMax);
      EXPECT_GE(t.q, cpu::kAttnTileMin);
    }
}

std::vector<const cpu::TileKernels*> runnable_kernels() {
  std::vector<const cpu::TileKernels*> v;
  const Isa best = cpu::detected_isa();
  if (best == Isa::kAvx512 && cpu::tile_kernels_avx512()) v.push_back(cpu::tile_kernels_avx512());
  if (best != Isa::kGeneric && cpu::tile_kernels_avx2()) v.push_back(cpu::tile_kernels_avx2());
  return v;
}

// Catches: row or column blocks that leave ragged rows/columns out, a transposed A read with the
// wrong stride, gemm_nd overwriting instead of accumulating, gemm_nt accumulating, keys
// transposed wrongly or their padding left unzeroed (NaN garbage).
TEST(TileKernels, MatchDoubleReference) {
  const auto kernels = runnable_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no vector path on this CPU";
  std::mt19937 gen(31);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto fill = [&](size_t n) {
    std::vector<float> x(n);
    for (float& e : x) e = u(gen);
    return x;
  };
  for (const cpu::TileKernels* mk : kernels)
    for (int m : {1, 5, 13, 128})
      for (int kn : {1, 7, 64})
        for (int d : {8, 16, 24, 64, 128}) {
          if (!mk->supports_d(d)) continue;
          SCOPED_TRACE(::testing::Message() << "width " << mk->width << " m=" << m << " kn=" << kn << " d=" << d);
          // gemm_nd, A transposed and not: C[m, d] += alpha op(A) B
          for (bool trans : {false, true}) {
            const int64_t lda = (trans ? m : kn) + 3, ldb = d + 5, ldc = d + 2;
            std::vector<float> a = fill(static_cast<size_t>(trans ? kn : m) * lda);
            std::vector<float> b = fill(static_cast<size_t>(kn) * ldb), c = fill(static_cast<size_t>(m) * ldc);
            std::vector<double> ref(c.begin(), c.end());
            for (int i = 0; i < m; ++i)
              for (int j = 0; j < d; ++j) {
                double s = 0.0;
                for (int k = 0; k < kn; ++k) s += double(trans ? a[k * lda + i] : a[i * lda + k]) * b[k * ldb + j];
                ref[i * ldc + j] += 0.75 * s;
              }
            mk->gemm_nd(m, d, kn, 0.75f, a.data(), trans ? 1 : lda, trans ? lda : 1, b.data(), ldb, c.data(), ldc);
            EXPECT_EQ(test::compare(c.data(), ref.data(), static_cast<int64_t>(c.size()), kF32, "gemm_nd"), "");
          }
        }
  // gemm_nt over keys transposed by transpose_keys: C[m, n] = alpha A K^T
  for (const cpu::TileKernels* mk : kernels)
    for (int m : {1, 7, 128})
      for (int n : {1, 9, 16, 100, 256})
        for (int d : {1, 5, 16, 64}) {
          SCOPED_TRACE(::testing::Message() << "width " << mk->width << " m=" << m << " n=" << n << " d=" << d);
          const int64_t lda = d + 1, ldk = d + 3, ldbt = cpu::kAttnTileKMax + 16, ldc = (n + 15) / 16 * 16;
          std::vector<float> a = fill(static_cast<size_t>(m) * lda), keys = fill(static_cast<size_t>(n) * ldk);
          std::vector<float> bt(static_cast<size_t>(d) * ldbt, std::numeric_limits<float>::quiet_NaN());
          std::vector<float> c(static_cast<size_t>(m) * ldc);
          mk->transpose_keys(keys.data(), ldk, n, d, bt.data(), ldbt);
          mk->gemm_nt(m, n, d, 0.5f, a.data(), lda, bt.data(), ldbt, c.data(), ldc);
          std::vector<float> got;
          std::vector<double> ref;
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) {
              double s = 0.0;
              for (int k = 0; k < d; ++k) s += double(a[i * lda + k]) * keys[j * ldk + k];
              ref.push_back(0.5 * s);
              got.push_back(c[i * ldc + j]);
            }
          EXPECT_EQ(test::compare(got.data(), ref.data(), static_cast<int64_t>(got.size()), kF32, "gemm_nt"), "");
        }
}

}  // namespace
}  // namespace ringtrain
