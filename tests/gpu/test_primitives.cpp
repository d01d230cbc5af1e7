// The GPU layer's primitives against their definitions, under every schedule: ldmatrix (x1, x2,
// x4, .trans) against the PTX ISA's fragment layout, mma.sync m16n8k16 (bf16, f16; fragments
// from the formulas and through ldmatrix) against a triple-loop GEMM, shuffles/votes against
// their CUDA definitions, atomics, cp.async groups. A wrong lane or register in the emulator
// (or, on a GPU, in the layer's inline PTX) fails here first.
#include <gtest/gtest.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <random>

#include "tests/gpu/gpu_test.h"
#include "tests/gpu/kernels/primitives.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

// Catches: a wrong row/column assignment or register order in ldmatrix, with or without .trans.
TEST(GpuPrimitives, LdmatrixMatchesIsaLayout) {
  for (int count : {1, 2, 4})
    for (bool trans : {false, true}) {
      std::vector<uint16_t> mats(static_cast<size_t>(count) * 64);
      for (size_t i = 0; i < mats.size(); ++i) mats[i] = static_cast<uint16_t>(1000 + i);
      DeviceBuffer<uint16_t> dm(mats);
      DeviceBuffer<uint32_t> dout(static_cast<size_t>(32 * count));
      const auto got = same_under_all_schedules<uint32_t>([&] {
        dout.poison();
        CUDA_CHECK(launch_ldmatrix_dump(count, trans, dm.get(), dout.get()));
        return dout.download();
      }, "ldmatrix");
      for (int lane = 0; lane < 32; ++lane)
        for (int m = 0; m < count; ++m) {
          auto M = [&](int r, int c) { return static_cast<uint32_t>(mats[static_cast<size_t>(m * 64 + r * 8 + c)]); };
          const int g = lane / 4, c = 2 * (lane % 4);
          const uint32_t want = trans ? (M(c, g) | (M(c + 1, g) << 16)) : (M(g, c) | (M(g, c + 1) << 16));
          EXPECT_EQ(got[static_cast<size_t>(lane * count + m)], want)
              << "ldmatrix x" << count << (trans ? ".trans" : "") << " lane " << lane << " reg " << m;
        }
    }
}

uint16_t to_bits(float v, bool bf16) {
  if (bf16) return __bfloat16_as_ushort(__float2bfloat16(v));
  return __half_as_ushort(__float2half(v));
}
float from_bits(uint16_t b, bool bf16) {
  if (bf16) return __bfloat162float(__ushort_as_bfloat16(b));
  return __half2float(__ushort_as_half(b));
}

// Catches: a fragment layout mismatch between A, B and C/D of mma.sync, an ldmatrix recipe
// that does not produce mma's fragments, wrong bf16/f16 decoding.
TEST(GpuPrimitives, MmaM16n8k16MatchesTripleLoop) {
  const uint64_t seed = 1234;
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (bool bf16 : {true, false})
    for (int b_mode : {0, 1, 2}) {
      const auto fa = random_floats(256, seed + 1), fb = random_floats(128, seed + 2), fc = random_floats(128, seed + 3);
      std::vector<uint16_t> a(256), b(128);
      for (int i = 0; i < 256; ++i) a[static_cast<size_t>(i)] = to_bits(fa[static_cast<size_t>(i)], bf16);
      for (int i = 0; i < 128; ++i) b[static_cast<size_t>(i)] = to_bits(fb[static_cast<size_t>(i)], bf16);
      DeviceBuffer<uint16_t> da(a), db(b);
      DeviceBuffer<float> dc(fc), dd(128);
      const auto got = same_under_all_schedules<float>([&] {
        dd.poison();
        CUDA_CHECK(launch_mma(bf16, b_mode, da.get(), db.get(), dc.get(), dd.get()));
        return dd.download();
      }, "mma");
      std::vector<double> ref(128);
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
          double acc = fc[static_cast<size_t>(i * 8 + j)];
          for (int k = 0; k < 16; ++k)
            acc += static_cast<double>(from_bits(a[static_cast<size_t>(i * 16 + k)], bf16)) *
                   from_bits(b[static_cast<size_t>(k * 8 + j)], bf16);
          ref[static_cast<size_t>(i * 8 + j)] = acc;
        }
      std::string what = bf16 ? "bf16" : "f16";
      what += " b_mode ";
      what += std::to_string(b_mode);
      EXPECT_EQ(compare(got.data(), ref.data(), 128, kF32, what.c_str()), "");
    }
}

// Catches: wrong source lanes for idx/up/down/xor at widths < 32, votes and sm_80 warp
// reductions over the wrong lanes,
// independent masks of a divergent warp interfering.
TEST(GpuPrimitives, ShufflesAndVotesMatchDefinitions) {
  std::vector<int> in(64);
  std::mt19937 rng(99);
  for (int& v : in) v = static_cast<int>(rng() % 100);
  in[37] = 5;
  DeviceBuffer<int> din(in), dout(64 * kWarpOps);
  const auto got = same_under_all_schedules<int>([&] {
    dout.poison();
    CUDA_CHECK(launch_warp_ops(din.get(), dout.get()));
    return dout.download();
  }, "warp ops");
  for (int tid = 0; tid < 64; ++tid) {
    const int w = tid / 32 * 32, lane = tid % 32;
    auto V = [&](int l) { return in[static_cast<size_t>(w + l)]; };
    auto O = [&](int k) { return got[static_cast<size_t>(tid * kWarpOps + k)]; };
    EXPECT_EQ(O(0), V((lane * 7 + 3) % 32)) << tid;
    EXPECT_EQ(O(1), lane >= 3 ? V(lane - 3) : V(lane)) << tid;
    EXPECT_EQ(O(2), lane + 5 < 32 ? V(lane + 5) : V(lane)) << tid;
    EXPECT_EQ(O(3), V(lane ^ 6)) << tid;
    EXPECT_EQ(O(4), V(lane / 8 * 8 + 2)) << tid;
    EXPECT_EQ(O(5), lane % 16 >= 1 ? V(lane - 1) : V(lane)) << tid;
    EXPECT_EQ(O(6), lane % 4 + 2 < 4 ? V(lane + 2) : V(lane)) << tid;
    EXPECT_EQ(O(7), lane < 16 ? V(lane) : V(lane ^ 16)) << tid;  // later groups out of reach
    unsigned ballot = 0;
    bool any5 = false, all_nonneg = true;
    for (int l = 0; l < 32; ++l) {
      if (V(l) & 1) ballot |= 1u << l;
      any5 |= V(l) == 5;
      all_nonneg &= V(l) >= 0;
    }
    EXPECT_EQ(static_cast<unsigned>(O(8)), ballot) << tid;
    EXPECT_EQ(O(9), any5 ? 1 : 0) << tid;
    EXPECT_EQ(O(10), all_nonneg ? 1 : 0) << tid;
    int sum = 0, mn = V(0), mx = V(0);
    for (int l = 0; l < 32; ++l) {
      sum += V(l);
      mn = std::min(mn, V(l));
      mx = std::max(mx, V(l));
    }
    EXPECT_EQ(O(14), sum) << tid;
    EXPECT_EQ(O(15), mn) << tid;
    EXPECT_EQ(O(16), mx) << tid;
    EXPECT_EQ(O(11), lane < 16 ? V(lane ^ 1) : V(lane ^ 2)) << tid;
    EXPECT_EQ(O(12), lane + 1 < 32 ? V(lane + 1) : V(lane)) << tid;
    if ((0x00ff00ffu >> lane) & 1u) {
      unsigned odd = 0;
      for (int l = 0; l < 32; ++l)
        if (((0x00ff00ffu >> l) & 1u) && (l & 1)) odd |= 1u << l;
      EXPECT_EQ(static_cast<unsigned>(O(13)), odd) << tid;
    } else {
      EXPECT_EQ(O(13), -1) << tid;
    }
  }
}

// Catches: lost updates, atomicCAS returning the wrong old value, atomicMax/Min semantics.
TEST(GpuPrimitives, AtomicsMatchDefinitions) {
  DeviceBuffer<int> counters(8);
  DeviceBuffer<float> fsum(1);
  const auto got = same_under_all_schedules<int>([&] {
    counters.upload({0, -1, 1000, 0, 0, -7, 42, 0});
    fsum.upload({0.0f});
    CUDA_CHECK(launch_atomics(counters.get(), fsum.get()));
    auto c = counters.download();
    const float f = fsum.download()[0];
    c.push_back(static_cast<int>(f));
    return c;
  }, "atomics");
  int mx = -1, mn = 1000;
  for (int t = 0; t < 1024; ++t) {
    mx = std::max(mx, (t * 37) % 1001);
    mn = std::min(mn, (t * 37) % 1001 - 500);
  }
  EXPECT_EQ(got[0], 1024);
  EXPECT_EQ(got[1], mx);
  EXPECT_EQ(got[2], mn);
  EXPECT_EQ(got[3], 2048);
  EXPECT_EQ(got[4], 3 * 1024);
  EXPECT_EQ(got[5], 42);  // atomicExch returned the old value
  EXPECT_EQ(got[6], 1234);
  EXPECT_EQ(got[8], 1536);  // sum over 1024 threads of tid % 4
}

// Catches: wait_group retiring the wrong groups, no zero fill for src-size < cp-size, and a
// landing outside what the PTX ISA allows: the kernel reads its first stage before the wait,
// which sees poison when copies land at the wait (lazy), the data when they land at issue
// (eager), either when they land at a random point; everything read after a wait is the data
// under every schedule.
TEST(GpuPrimitives, CpAsyncGroupsAndZeroFill) {
  std::vector<float> src(512);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) + 0.25f;
  DeviceBuffer<float> dsrc(src), dout(32 * kCpOut);
  const auto results = run_all_schedules<float>([&] {
    dout.poison();
    CUDA_CHECK(launch_cp_async(dsrc.get(), dout.get()));
    return dout.download();
  });
  const auto cases = all_schedules();
  for (size_t c = 0; c < results.size(); ++c) {
    const gpu::CpAsyncLanding landing = gpu::kEmulated ? cases[c].landing : gpu::CpAsyncLanding::kRandom;
    SCOPED_TRACE(gpu::kEmulated ? cases[c].name() : "device");
    int landed_early = 0;
    for (int t = 0; t < 32; ++t) landed_early += std::isnan(results[c][static_cast<size_t>(t * kCpOut)]) ? 0 : 1;
    if (gpu::kEmulated && landing == gpu::CpAsyncLanding::kRandom) {
      // Each group lands at issue with probability 1/5: some of the 32 threads' first groups
      // must have, and some not (a seeded draw, so this holds or fails every run).
      EXPECT_GT(landed_early, 0);
      EXPECT_LT(landed_early, 32);
    }
    for (int t = 0; t < 32; ++t) {
      const float* o = results[c].data() + t * kCpOut;
      for (int i = 0; i < 4; ++i) {
        const float early = o[i], data = src[static_cast<size_t>(t * 4 + i)];
        if (landing == gpu::CpAsyncLanding::kLazy) {
          EXPECT_TRUE(std::isnan(early)) << "landed before its wait";
        } else if (landing == gpu::CpAsyncLanding::kEager) {
          EXPECT_EQ(early, data) << "did not land at issue";
        } else {
          EXPECT_TRUE(std::isnan(early) || early == data);
        }
        EXPECT_EQ(o[4 + i], data);
        EXPECT_EQ(o[8 + i], src[static_cast<size_t>(128 + t * 4 + i)]);
        EXPECT_EQ(o[12 + i], src[static_cast<size_t>(256 + t * 4 + i)]);
        EXPECT_EQ(o[16 + i], i < 2 ? src[static_cast<size_t>(t * 4 + i)] : 0.0f);
      }
      EXPECT_EQ(o[20], src[static_cast<size_t>(200 + t)]);
      EXPECT_EQ(o[21], src[static_cast<size_t>(256 + 2 * t)]);
      EXPECT_EQ(o[22], src[static_cast<size_t>(257 + 2 * t)]);
      EXPECT_EQ(o[23], 0.0f);
    }
  }
}

}  // namespace
}  // namespace ringtrain::test
