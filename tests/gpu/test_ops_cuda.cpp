// The CUDA elementwise, row and optimizer operations (kernels/cuda/ops_{elementwise,rows,optim}.cu)
// against their CPU versions (kernels/cpu) on random seeded inputs, through tests/tolerance.h
// (kF32), on the emulated device under every schedule — results bitwise equal across schedules
// (run-to-run on a real GPU). Outputs are poisoned (0xFF = NaN) before every run, so an element
// a kernel forgets to write fails. Sizes are chosen off the block sizes (256 threads, 32-column
// blocks) so tails and grid-stride loops run.
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/backend.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cross_entropy.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "tests/gpu/gpu_test.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

using gpu::Status;

std::vector<int32_t> random_ints(size_t n, uint64_t seed, int32_t lo, int32_t hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = d(rng);
  return v;
}

std::vector<float> cat(std::initializer_list<const std::vector<float>*> parts) {
  std::vector<float> r;
  for (const auto* p : parts) r.insert(r.end(), p->begin(), p->end());
  return r;
}

std::string seed_note(uint64_t seed) { return "seed " + std::to_string(seed); }

// ---------------------------------------------------------------- elementwise

// Catches: an off-by-one or 32-bit index in the grid-stride loop (tails, sizes above one
// grid's worth of threads), a launch for zero elements failing, add/scale on the wrong operand.
TEST(OpsCuda, FillAddScale) {
  for (int64_t n : {int64_t{1}, int64_t{255}, int64_t{257}, int64_t{1000}, int64_t{4096 * 256 + 77}}) {
    const uint64_t seed = 100 + static_cast<uint64_t>(n);
    SCOPED_TRACE("n " + std::to_string(n) + " " + seed_note(seed));
    const auto a = random_floats(static_cast<size_t>(n), seed), b = random_floats(static_cast<size_t>(n), seed + 1);
    DeviceBuffer<float> dx(static_cast<size_t>(n)), dy(static_cast<size_t>(n)), dsrc(b);
    const auto got = same_under_all_schedules<float>([&] {
      dx.poison();
      CUDA_CHECK(cuda::fill(dx.get(), 0.625f, n, nullptr));
      const auto filled = dx.download();
      dy.upload(a);
      CUDA_CHECK(cuda::add_inplace(dy.get(), dsrc.get(), n, nullptr));
      const auto added = dy.download();
      dy.upload(a);
      CUDA_CHECK(cuda::scale_inplace(dy.get(), -1.75f, n, nullptr));
      const auto scaled = dy.download();
      return cat({&filled, &added, &scaled});
    }, "fill/add/scale");
    std::vector<float> ref(3 * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      ref[static_cast<size_t>(i)] = 0.625f;
      ref[static_cast<size_t>(n + i)] = a[static_cast<size_t>(i)] + b[static_cast<size_t>(i)];
    }
    std::vector<float> sc = a;
    ringtrain::scale_inplace(sc.data(), n, -1.75f);
    std::copy(sc.begin(), sc.end(), ref.begin() + 2 * n);
    EXPECT_EQ(compare(got.data(), ref.data(), 3 * n, kF32, "fill/add/scale"), "");
  }
}

// Catches: an operation that launches (and fails or touches memory) for zero elements; every
// op must return success without running when there is nothing to do.
TEST(OpsCuda, ZeroSizedCallsSucceed) {
  DeviceBuffer<double> out(1), work(cuda::kSumSquaresBlocks);
  out.poison();
  EXPECT_EQ(cuda::fill(nullptr, 1.0f, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::add_inplace(nullptr, nullptr, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::scale_inplace(nullptr, 2.0f, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::cast_to_bf16(nullptr, nullptr, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::cast_from_bf16(nullptr, nullptr, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::swiglu_forward(nullptr, nullptr, nullptr, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::swiglu_backward(nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::swap01(nullptr, nullptr, 3, 0, 5, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::gather_heads(nullptr, nullptr, 0, 2, 4, 8, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::sum_heads(nullptr, nullptr, 0, 4, 2, 8, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::rmsnorm_forward(RmsNormArgs{0, 64, 1e-5f}, nullptr, nullptr, nullptr, nullptr, nullptr),
            Status::kSuccess);
  EXPECT_EQ(cuda::rmsnorm_backward(RmsNormArgs{0, 64, 1e-5f}, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr),
            Status::kSuccess);
  RopeArgs ra;
  ra.tokens = 0;
  ra.heads = 4;
  ra.head_dim = 64;
  EXPECT_EQ(cuda::rope_forward(ra, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::rope_backward(ra, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::embedding_forward(EmbeddingArgs{0, 16, 0, 10}, nullptr, nullptr, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::embedding_backward(EmbeddingArgs{0, 16, 0, 10}, nullptr, nullptr, nullptr, nullptr),
            Status::kSuccess);
  const CrossEntropyArgs ce{0, 100, 0};
  EXPECT_EQ(cuda::cross_entropy_max(ce, nullptr, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::cross_entropy_sumexp(ce, nullptr, nullptr, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::cross_entropy_target(ce, nullptr, nullptr, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::cross_entropy_finish(0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            Status::kSuccess);
  EXPECT_EQ(cuda::cross_entropy_backward(ce, nullptr, nullptr, nullptr, 1.0f, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::argmax_pairs(ce, nullptr, nullptr, nullptr), Status::kSuccess);
  EXPECT_EQ(cuda::adamw_step(AdamWArgs{}, nullptr, nullptr, nullptr, nullptr, 0, nullptr), Status::kSuccess);
  // The sum of nothing is written as +0.0, not left unwritten.
  EXPECT_EQ(cuda::sum_squares(nullptr, 0, out.get(), work.get(), nullptr), Status::kSuccess);
  const auto o = out.download();
  EXPECT_EQ(o[0], 0.0);
  EXPECT_FALSE(std::signbit(o[0]));
}

// Round to nearest, ties to even, written out on the bits (independent of cuda_bf16.h).
uint16_t bf16_rne_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) return 0x7FC0;  // NaN
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7FFFu + lsb) >> 16);
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Catches: truncation or round-half-up instead of ties-to-even, overflow not going to inf,
// subnormals flushed, NaN turned into inf, cast_from_bf16 not exact.
TEST(OpsCuda, CastBf16RoundsToNearestEven) {
  struct Chosen {
    uint32_t in;
    uint16_t out;
  };
  const std::vector<Chosen> chosen = {
      {0x3F808000u, 0x3F80},  // 1 + 2^-8: tie, even neighbour is 1.0 (down)
      {0x3F818000u, 0x3F82},  // 1 + 3 * 2^-8: tie, odd below, so up
      {0x3F808001u, 0x3F81},  // just above the tie: up
      {0x3F807FFFu, 0x3F80},  // just below the tie: down
      {0xBF808000u, 0xBF80},  // negative tie: to even (magnitude down)
      {0xBF818000u, 0xBF82},  // negative tie: to even (magnitude up)
      {0x7F7FFFFFu, 0x7F80},  // FLT_MAX rounds to +inf
      {0x7F7F7FFFu, 0x7F7F},  // below the tie to inf: largest finite bf16
      {0x7F800000u, 0x7F80},  // +inf
      {0xFF800000u, 0xFF80},  // -inf
      {0x00008000u, 0x0000},  // subnormal tie to even (0)
      {0x00018000u, 0x0002},  // subnormal tie to even (up)
      {0x80000000u, 0x8000},  // -0 keeps its sign
  };
  std::vector<float> in;
  for (const Chosen& c : chosen) in.push_back(from_bits(c.in));
  in.push_back(std::numeric_limits<float>::quiet_NaN());
  const auto rnd = random_floats(3001, 555, -1000.0f, 1000.0f);
  in.insert(in.end(), rnd.begin(), rnd.end());
  const int64_t n = static_cast<int64_t>(in.size());
  DeviceBuffer<float> dx(in), dback(in.size());
  DeviceBuffer<__nv_bfloat16> dy(in.size());
  const auto got = same_under_all_schedules<float>([&] {
    dy.poison();
    dback.poison();
    CUDA_CHECK(cuda::cast_to_bf16(dx.get(), dy.get(), n, nullptr));
    CUDA_CHECK(cuda::cast_from_bf16(dy.get(), dback.get(), n, nullptr));
    return dback.download();
  }, "bf16 casts");
  const auto bits = dy.download();
  for (size_t i = 0; i < chosen.size(); ++i)
    EXPECT_EQ(__bfloat16_as_ushort(bits[i]), chosen[i].out) << "input bits 0x" << std::hex << chosen[i].in;
  const uint16_t nan_bits = __bfloat16_as_ushort(bits[chosen.size()]);
  EXPECT_TRUE((nan_bits & 0x7F80) == 0x7F80 && (nan_bits & 0x7F) != 0) << "NaN became 0x" << std::hex << nan_bits;
  for (size_t i = chosen.size() + 1; i < in.size(); ++i) {
    ASSERT_EQ(__bfloat16_as_ushort(bits[i]), bf16_rne_bits(in[i])) << "element " << i << " value " << in[i];
    // the way back is exact: the bf16 bits in the high half of the float
    ASSERT_EQ(got[i], from_bits(static_cast<uint32_t>(bf16_rne_bits(in[i])) << 16)) << "element " << i;
  }
}

// Catches: a wrong silu derivative, sigmoid overflow for large |g|, dgate/dup swapped, tails.
TEST(OpsCuda, SwigluMatchesCpu) {
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{4099}}) {
    const uint64_t seed = 200 + static_cast<uint64_t>(n);
    SCOPED_TRACE("n " + std::to_string(n) + " " + seed_note(seed));
    const size_t sn = static_cast<size_t>(n);
    const auto gate = random_floats(sn, seed, -12.0f, 12.0f), up = random_floats(sn, seed + 1, -2.0f, 2.0f),
               dh = random_floats(sn, seed + 2);
    DeviceBuffer<float> dg(gate), du(up), ddh(dh), h(sn), dgate(sn), dup(sn);
    const auto got = same_under_all_schedules<float>([&] {
      for (auto* b : {&h, &dgate, &dup}) b->poison();
      CUDA_CHECK(cuda::swiglu_forward(dg.get(), du.get(), h.get(), n, nullptr));
      CUDA_CHECK(cuda::swiglu_backward(ddh.get(), dg.get(), du.get(), dgate.get(), dup.get(), n, nullptr));
      const auto a = h.download(), b = dgate.download(), c = dup.download();
      return cat({&a, &b, &c});
    }, "swiglu");
    std::vector<float> rh(sn), rg(sn), ru(sn);
    ringtrain::swiglu_forward(gate.data(), up.data(), rh.data(), n);
    ringtrain::swiglu_backward(dh.data(), gate.data(), up.data(), rg.data(), ru.data(), n);
    const auto ref = cat({&rh, &rg, &ru});
    EXPECT_EQ(compare(got.data(), ref.data(), 3 * n, kF32, "swiglu h|dgate|dup"), "");
  }
}

// Catches: A and B exchanged in the index arithmetic, C not kept contiguous, extents of 1.
TEST(OpsCuda, Swap01Transposes) {
  struct Shape {
    int64_t a, b, c;
  };
  for (const Shape s : {Shape{3, 5, 7}, Shape{1, 4, 1}, Shape{4, 1, 9}, Shape{8, 6, 130}}) {
    const size_t n = static_cast<size_t>(s.a * s.b * s.c);
    const auto src = random_floats(n, 300 + n);
    DeviceBuffer<float> dsrc(src), ddst(n);
    const auto got = same_under_all_schedules<float>([&] {
      ddst.poison();
      CUDA_CHECK(cuda::swap01(dsrc.get(), ddst.get(), s.a, s.b, s.c, nullptr));
      return ddst.download();
    }, "swap01");
    for (int64_t a = 0; a < s.a; ++a)
      for (int64_t b = 0; b < s.b; ++b)
        for (int64_t c = 0; c < s.c; ++c)
          ASSERT_EQ(got[static_cast<size_t>((b * s.a + a) * s.c + c)], src[static_cast<size_t>((a * s.b + b) * s.c + c)])
              << "shape " << s.a << "x" << s.b << "x" << s.c << " at " << a << "," << b << "," << c;
  }
}

// Ulysses beyond the kv heads (parallel/context_attention.cpp) sends some kv heads twice and
// sums their gradients back. Compared bitwise with the CPU backend: the sum's order is part of
// the contract (j ascending), so that the CUDA and CPU trainers agree to the bit there. Values
// span many binades, so a different order of a duplicate's partial sums changes the bits.
// Catches: map read from the wrong side (gather by destination, sum by source), a duplicate's
// contributions summed in another order or only the last kept, a head no j maps to left
// unwritten instead of zero, rows/heads/d exchanged in the index arithmetic.
TEST(OpsCuda, GatherAndSumHeadsMatchCpuBitwise) {
  struct Case {
    int64_t rows;
    int few, many, d;            // kv heads, heads sent (gather: few -> many; sum: many -> few)
    std::vector<int32_t> map;    // [many], values in [0, few)
  };
  const std::vector<Case> cases = {
      {3, 2, 4, 8, {0, 0, 1, 1}},           // 2 kv heads to Ulysses degree 4: each sent twice
      {37, 2, 8, 16, {0, 0, 0, 0, 1, 1, 1, 1}},
      {5, 3, 5, 33, {2, 0, 2, 1, 2}},       // unordered, head 2 three times
      {9, 4, 3, 7, {3, 1, 3}},              // heads 0 and 2 unused: summed to zero
      {300, 1, 2, 130, {0, 0}},             // above one block of threads, d off the block size
  };
  const auto cpu = make_cpu_backend(Precision::kF32);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    const uint64_t seed = 350 + ci;
    SCOPED_TRACE("case " + std::to_string(ci) + " " + seed_note(seed));
    const size_t few_n = static_cast<size_t>(c.rows * c.few * c.d), many_n = static_cast<size_t>(c.rows * c.many * c.d);
    auto wide = [](std::vector<float> v, uint64_t s) {
      const auto e = random_ints(v.size(), s, -20, 20);
      for (size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(v[i], e[i]);
      return v;
    };
    const auto kv = wide(random_floats(few_n, seed), seed + 1), grads = wide(random_floats(many_n, seed + 2), seed + 3);
    DeviceBuffer<int32_t> dmap(c.map);
    DeviceBuffer<float> dkv(kv), dgathered(many_n), dgrads(grads), dsummed(few_n);
    const auto got = same_under_all_schedules<float>([&] {
      dgathered.poison();
      dsummed.poison();
      CUDA_CHECK(cuda::gather_heads(dkv.get(), dgathered.get(), c.rows, c.few, c.many, c.d, dmap.get(), nullptr));
      CUDA_CHECK(cuda::sum_heads(dgrads.get(), dsummed.get(), c.rows, c.many, c.few, c.d, dmap.get(), nullptr));
      const auto a = dgathered.download(), b = dsummed.download();
      return cat({&a, &b});
    }, "gather/sum heads");
    std::vector<float> gathered(many_n), summed(few_n, std::numeric_limits<float>::quiet_NaN());
    cpu->gather_heads(kv.data(), gathered.data(), c.rows, c.few, c.many, c.d, c.map.data());
    cpu->sum_heads(grads.data(), summed.data(), c.rows, c.many, c.few, c.d, c.map.data());
    const auto ref = cat({&gathered, &summed});
    const int64_t diff = first_bitwise_difference(got, ref);
    EXPECT_EQ(diff, -1) << "first difference at element " << diff << " (gathered: " << many_n
                        << " elements, then summed)";
  }
}

// ---------------------------------------------------------------- rows

// Catches: a block reduction missing a barrier or a warp's partial (dims not a multiple of the
// block), mean over the wrong count, rstd not saved, dx's correction term wrong, dw overwritten
// instead of accumulated or summed in a schedule-dependent order, nullptr dx/dw not honoured.
TEST(OpsCuda, RmsNormMatchesCpu) {
  struct Shape {
    int rows, dim;
  };
  // 70 and 200 rows: several 64-row chunks of dw partial sums, the last one ragged.
  for (const Shape s : {Shape{1, 1}, Shape{5, 300}, Shape{3, 1024}, Shape{7, 513}, Shape{70, 96}, Shape{200, 40}}) {
    const uint64_t seed = 400 + static_cast<uint64_t>(s.rows * 1000 + s.dim);
    SCOPED_TRACE("rows " + std::to_string(s.rows) + " dim " + std::to_string(s.dim) + " " + seed_note(seed));
    const RmsNormArgs a{s.rows, s.dim, 1e-5f};
    const size_t n = static_cast<size_t>(s.rows) * s.dim, d = static_cast<size_t>(s.dim);
    const auto x = random_floats(n, seed, -2.0f, 2.0f), w = random_floats(d, seed + 1, 0.5f, 1.5f),
               dy = random_floats(n, seed + 2), dw0 = random_floats(d, seed + 3);
    DeviceBuffer<float> dx_in(x), dw_in(w), ddy(dy), y(n), rstd(static_cast<size_t>(s.rows)), gx(n), gw(d),
        work(static_cast<size_t>(cuda::rmsnorm_backward_work_elems(s.rows, s.dim)));
    const auto got = same_under_all_schedules<float>([&] {
      y.poison();
      rstd.poison();
      gx.poison();
      gw.upload(dw0);
      CUDA_CHECK(cuda::rmsnorm_forward(a, dx_in.get(), dw_in.get(), y.get(), rstd.get(), nullptr));
      CUDA_CHECK(cuda::rmsnorm_backward(a, ddy.get(), dx_in.get(), dw_in.get(), rstd.get(), gx.get(), gw.get(), work.get(), nullptr));
      const auto r1 = y.download(), r2 = rstd.download(), r3 = gx.download(), r4 = gw.download();
      return cat({&r1, &r2, &r3, &r4});
    }, "rmsnorm");
    std::vector<float> ry(n), rr(static_cast<size_t>(s.rows)), rgx(n), rgw = dw0;
    ringtrain::rmsnorm_forward(a, x.data(), w.data(), ry.data(), rr.data());
    ringtrain::rmsnorm_backward(a, dy.data(), x.data(), w.data(), rr.data(), rgx.data(), rgw.data());
    const auto ref = cat({&ry, &rr, &rgx, &rgw});
    EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "rmsnorm y|rstd|dx|dw"), "");

    // dx only, then dw only: each pointer may be null.
    gx.poison();
    CUDA_CHECK(cuda::rmsnorm_backward(a, ddy.get(), dx_in.get(), dw_in.get(), rstd.get(), gx.get(), nullptr, nullptr, nullptr));
    EXPECT_EQ(compare(gx.download().data(), rgx.data(), static_cast<int64_t>(n), kF32, "dx alone"), "");
    gw.upload(dw0);
    CUDA_CHECK(cuda::rmsnorm_backward(a, ddy.get(), dx_in.get(), dw_in.get(), rstd.get(), nullptr, gw.get(), work.get(), nullptr));
    EXPECT_EQ(compare(gw.download().data(), rgw.data(), static_cast<int64_t>(d), kF32, "dw alone"), "");
  }
}

// Catches: an angle computed differently from the CPU (fp64 angle, another inv_freq formula,
// which at positions ~6e4 differs by far more than the tolerance), pairing i with i+1 instead
// of i + d/2, the forward sign convention, backward not the inverse rotation, local instead of
// given (global, non-monotone) positions, heads skipped; with RoPE scaling, frequencies or
// the yarn cos/sin factor that differ from the CPU's (tests/hf/rope_reference.py ties those to
// transformers).
TEST(OpsCuda, RopeMatchesCpu) {
  struct Case {
    int tokens, heads, head_dim;
    double theta;
    RopeScaling scaling = {};
  };
  RopeScaling linear, llama3, yarn;
  linear.type = RopeType::kLinear;
  linear.factor = 4.0;
  llama3.type = RopeType::kLlama3;
  llama3.factor = 8.0;
  llama3.original_max_positions = 8192;
  yarn.type = RopeType::kYarn;
  yarn.factor = 16.0;
  yarn.original_max_positions = 4096;
  yarn.attention_factor = 1.25;
  for (const Case& c : {Case{37, 3, 64, 10000.0}, Case{20, 2, 128, 500000.0}, Case{300, 1, 6, 10000.0},
                       Case{5, 4, 256, 1000000.0}, Case{33, 2, 64, 10000.0, linear},
                       Case{40, 3, 128, 500000.0, llama3}, Case{29, 2, 64, 10000.0, yarn}}) {
    const uint64_t seed = 500 + static_cast<uint64_t>(c.tokens * 7 + c.head_dim);
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " heads " + std::to_string(c.heads) + " head_dim " +
                 std::to_string(c.head_dim) + " scaling " + std::to_string(static_cast<int>(c.scaling.type)) + " " +
                 seed_note(seed));
    const size_t n = static_cast<size_t>(c.tokens) * c.heads * c.head_dim;
    const auto x = random_floats(n, seed);
    auto pos = random_ints(static_cast<size_t>(c.tokens), seed + 1, 0, 65535);
    pos[0] = 0;
    DeviceBuffer<float> dx(n);
    DeviceBuffer<int32_t> dpos(pos);
    RopeArgs a;
    a.tokens = c.tokens;
    a.heads = c.heads;
    a.head_dim = c.head_dim;
    a.theta = c.theta;
    a.scaling = c.scaling;
    a.positions = dpos.get();
    const auto got = same_under_all_schedules<float>([&] {
      dx.upload(x);
      CUDA_CHECK(cuda::rope_forward(a, dx.get(), nullptr));
      const auto fwd = dx.download();
      dx.upload(x);
      CUDA_CHECK(cuda::rope_backward(a, dx.get(), nullptr));
      const auto bwd = dx.download();
      return cat({&fwd, &bwd});
    }, "rope");
    RopeArgs ac = a;
    ac.positions = pos.data();
    std::vector<float> rf = x, rb = x;
    ringtrain::rope_forward(ac, rf.data());
    ringtrain::rope_backward(ac, rb.data());
    const auto ref = cat({&rf, &rb});
    EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "rope fwd|bwd"), "");
  }
}

// Catches: ids outside the shard not zeroed (forward) or scattered out of bounds (backward),
// vocab_start not subtracted, repeated ids losing contributions or adding them in a
// schedule-dependent order, dtable overwritten instead of accumulated.
TEST(OpsCuda, EmbeddingMatchesCpu) {
  struct Case {
    int tokens, dim, vocab_start, vocab_local, vocab_total;
  };
  for (const Case c : {Case{300, 70, 20, 25, 50}, Case{1, 1, 0, 1, 1}, Case{513, 64, 0, 200, 200},
                       Case{97, 33, 150, 100, 300}}) {
    const uint64_t seed = 600 + static_cast<uint64_t>(c.tokens + c.dim);
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " dim " + std::to_string(c.dim) + " shard [" +
                 std::to_string(c.vocab_start) + ", +" + std::to_string(c.vocab_local) + ") " + seed_note(seed));
    const EmbeddingArgs a{c.tokens, c.dim, c.vocab_start, c.vocab_local};
    const size_t nt = static_cast<size_t>(c.tokens) * c.dim, nv = static_cast<size_t>(c.vocab_local) * c.dim;
    auto ids = random_ints(static_cast<size_t>(c.tokens), seed, 0, c.vocab_total - 1);
    if (c.tokens > 4) ids[3] = ids[1] = c.vocab_start;  // a repeated id inside the shard
    const auto table = random_floats(nv, seed + 1), dout = random_floats(nt, seed + 2),
               dt0 = random_floats(nv, seed + 3);
    DeviceBuffer<int32_t> dids(ids);
    DeviceBuffer<float> dtable(table), ddout(dout), out(nt), dtab(nv);
    const auto got = same_under_all_schedules<float>([&] {
      out.poison();
      dtab.upload(dt0);
      CUDA_CHECK(cuda::embedding_forward(a, dids.get(), dtable.get(), out.get(), nullptr));
      CUDA_CHECK(cuda::embedding_backward(a, dids.get(), ddout.get(), dtab.get(), nullptr));
      const auto r1 = out.download(), r2 = dtab.download();
      return cat({&r1, &r2});
    }, "embedding");
    std::vector<float> ro(nt), rt = dt0;
    ringtrain::embedding_forward(a, ids.data(), table.data(), ro.data());
    ringtrain::embedding_backward(a, ids.data(), dout.data(), rt.data());
    const auto ref = cat({&ro, &rt});
    EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "embedding out|dtable"), "");
  }
}

// The vocab-parallel protocol on one process: the logits [rows, vocab] split into column
// shards; max, sum of exponentials and target logit per shard on the device, combined on the
// host as the all-reduces would (max, sum, sum), then finish; the loss and lse against the CPU's
// single-shard forward, each reduction against the CPU op on its shard, the backward of each
// shard against the CPU backward with the global lse, argmax pairs against the first maximum.
// Catches: a shard's target counted when it does not own it (or missed when it does), ignored
// targets (< 0) given a loss or a gradient, vocab_start not subtracted, the row scale not
// applied or applied to the one-hot term only, the row reductions dropping columns past a
// multiple of the block, argmax returning a later column on ties or a shard-local id.
TEST(OpsCuda, CrossEntropyVocabShardsMatchCpu) {
  const uint64_t seed = 700;
  SCOPED_TRACE(seed_note(seed));
  const int rows = 33, vocab = 1000;
  const std::vector<std::pair<int, int>> shards = {{0, 300}, {300, 401}, {701, 299}};  // (start, size)
  auto logits = random_floats(static_cast<size_t>(rows) * vocab, seed, -4.0f, 4.0f);
  auto targets = random_ints(static_cast<size_t>(rows), seed + 1, 0, vocab - 1);
  targets[2] = -1;
  targets[9] = -100;
  targets[4] = 0;
  targets[5] = vocab - 1;
  targets[6] = 300;  // the first column of the second shard
  targets[7] = 299;  // the last column of the first shard
  // Ties for argmax: row 10's maximum twice in one shard, row 11's in two shards.
  logits[10 * vocab + 350] = logits[10 * vocab + 650] = 9.0f;
  logits[11 * vocab + 100] = logits[11 * vocab + 800] = 9.5f;
  const float scale = 0.37f;

  // The CPU on the whole row (one shard): the loss and lse everything must reproduce.
  const CrossEntropyArgs full{rows, vocab, 0};
  std::vector<float> ref_loss(rows), ref_lse(rows);
  ringtrain::cross_entropy_forward(full, logits.data(), targets.data(), ref_loss.data(), ref_lse.data());

  DeviceBuffer<int32_t> dtargets(targets);
  std::vector<std::vector<float>> shard_logits;
  for (const auto& [start, size] : shards) {
    std::vector<float> s(static_cast<size_t>(rows) * size);
    for (int r = 0; r < rows; ++r)
      std::copy_n(logits.begin() + static_cast<int64_t>(r) * vocab + start, size, s.begin() + static_cast<int64_t>(r) * size);
    shard_logits.push_back(std::move(s));
  }

  const auto got = same_under_all_schedules<float>([&] {
    std::vector<float> result;
    std::vector<float> m(rows, -INFINITY), s(rows, 0.0f), t(rows, 0.0f);
    std::vector<std::unique_ptr<DeviceBuffer<float>>> dl;
    DeviceBuffer<float> buf(rows), dm(rows), dlse(rows), dloss(rows), ds(rows), dt(rows);
    for (size_t k = 0; k < shards.size(); ++k) {
      const CrossEntropyArgs a{rows, shards[k].second, shards[k].first};
      dl.push_back(std::make_unique<DeviceBuffer<float>>(shard_logits[k]));
      buf.poison();
      CUDA_CHECK(cuda::cross_entropy_max(a, dl[k]->get(), buf.get(), nullptr));
      const auto mk = buf.download();
      result.insert(result.end(), mk.begin(), mk.end());
      for (int r = 0; r < rows; ++r) m[r] = std::max(m[r], mk[r]);  // all-reduce max
    }
    dm.upload(m);
    for (size_t k = 0; k < shards.size(); ++k) {
      const CrossEntropyArgs a{rows, shards[k].second, shards[k].first};
      buf.poison();
      CUDA_CHECK(cuda::cross_entropy_sumexp(a, dl[k]->get(), dm.get(), buf.get(), nullptr));
      const auto sk = buf.download();
      buf.poison();
      CUDA_CHECK(cuda::cross_entropy_target(a, dl[k]->get(), dtargets.get(), buf.get(), nullptr));
      const auto tk = buf.download();
      result.insert(result.end(), sk.begin(), sk.end());
      result.insert(result.end(), tk.begin(), tk.end());
      for (int r = 0; r < rows; ++r) {  // all-reduce sums, in shard order
        s[r] += sk[r];
        t[r] += tk[r];
      }
    }
    ds.upload(s);
    dt.upload(t);
    dloss.poison();
    dlse.poison();
    CUDA_CHECK(cuda::cross_entropy_finish(rows, dm.get(), ds.get(), dt.get(), dtargets.get(), dloss.get(),
                                          dlse.get(), nullptr));
    const auto loss = dloss.download(), lse = dlse.download();
    result.insert(result.end(), loss.begin(), loss.end());
    result.insert(result.end(), lse.begin(), lse.end());
    // backward of every shard with the CPU's lse (so it is checked on its own), then argmax
    DeviceBuffer<float> dref_lse(ref_lse);
    for (size_t k = 0; k < shards.size(); ++k) {
      const CrossEntropyArgs a{rows, shards[k].second, shards[k].first};
      DeviceBuffer<float> pairs(2 * static_cast<size_t>(rows));
      pairs.poison();
      CUDA_CHECK(cuda::argmax_pairs(a, dl[k]->get(), pairs.get(), nullptr));
      const auto pk = pairs.download();
      CUDA_CHECK(cuda::cross_entropy_backward(a, dl[k]->get(), dref_lse.get(), dtargets.get(), scale, nullptr));
      const auto gk = dl[k]->download();
      result.insert(result.end(), pk.begin(), pk.end());
      result.insert(result.end(), gk.begin(), gk.end());
    }
    return result;
  }, "cross-entropy");

  // Same layout from the CPU ops and host loops.
  std::vector<float> ref;
  std::vector<float> m(rows, -INFINITY);
  for (size_t k = 0; k < shards.size(); ++k) {
    const CrossEntropyArgs a{rows, shards[k].second, shards[k].first};
    std::vector<float> mk(rows);
    ringtrain::cross_entropy_max(a, shard_logits[k].data(), mk.data());
    ref.insert(ref.end(), mk.begin(), mk.end());
    for (int r = 0; r < rows; ++r) m[r] = std::max(m[r], mk[r]);
  }
  for (size_t k = 0; k < shards.size(); ++k) {
    const CrossEntropyArgs a{rows, shards[k].second, shards[k].first};
    std::vector<float> sk(rows), tk(rows);
    ringtrain::cross_entropy_sumexp(a, shard_logits[k].data(), m.data(), sk.data());
    ringtrain::cross_entropy_target(a, shard_logits[k].data(), targets.data(), tk.data());
    ref.insert(ref.end(), sk.begin(), sk.end());
    ref.insert(ref.end(), tk.begin(), tk.end());
  }
  ref.insert(ref.end(), ref_loss.begin(), ref_loss.end());
  ref.insert(ref.end(), ref_lse.begin(), ref_lse.end());
  const std::vector<float> scales(rows, scale);
  for (size_t k = 0; k < shards.size(); ++k) {
    const auto [start, size] = shards[k];
    const CrossEntropyArgs a{rows, size, start};
    for (int r = 0; r < rows; ++r) {
      const float* z = shard_logits[k].data() + static_cast<int64_t>(r) * size;
      int best = 0;
      for (int j = 1; j < size; ++j)
        if (z[j] > z[best]) best = j;
      ref.push_back(z[best]);
      ref.push_back(static_cast<float>(start + best));
    }
    std::vector<float> g = shard_logits[k];
    ringtrain::cross_entropy_backward(a, g.data(), ref_lse.data(), targets.data(), scales.data());
    ref.insert(ref.end(), g.begin(), g.end());
  }
  ASSERT_EQ(got.size(), ref.size());
  EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32,
                    "max|sumexp,target|loss,lse|argmax,backward per shard"),
            "");
  // The argmax ids are exact (and the ties resolved to the first column).
  size_t off = 3 * rows + 6 * rows + 2 * rows;
  for (size_t k = 0; k < shards.size(); ++k) {
    for (int r = 0; r < rows; ++r)
      EXPECT_EQ(got[off + 2 * r + 1], ref[off + 2 * r + 1]) << "argmax id of row " << r << " shard " << k;
    off += 2 * rows + static_cast<size_t>(rows) * shards[k].second;
  }
  // Ignored rows: no loss and an all-zero gradient in every shard.
  EXPECT_EQ(got[9 * rows + 2], 0.0f);
  EXPECT_EQ(got[9 * rows + 9], 0.0f);
  off = 11 * rows;
  for (size_t k = 0; k < shards.size(); ++k) {
    const size_t g0 = off + 2 * rows, size = static_cast<size_t>(shards[k].second);
    for (const size_t r : {size_t{2}, size_t{9}})
      for (size_t j = 0; j < size; ++j) ASSERT_EQ(got[g0 + r * size + j], 0.0f) << "ignored row " << r << " shard " << k;
    off = g0 + rows * size;
  }
}

// ---------------------------------------------------------------- optimizer

// Catches: the bias corrections applied with the wrong step, decay applied when wd = 0 or to the
// update instead of the weight, m/v not written back, eps inside the sqrt, tails.
TEST(OpsCuda, AdamWMatchesCpu) {
  for (const float wd : {0.0f, 0.1f}) {
    const int64_t n = 1003;
    const uint64_t seed = 800 + static_cast<uint64_t>(wd * 10);
    SCOPED_TRACE("wd " + std::to_string(wd) + " " + seed_note(seed));
    const size_t sn = static_cast<size_t>(n);
    const auto p0 = random_floats(sn, seed);
    std::vector<std::vector<float>> grads;
    for (int s = 0; s < 3; ++s) grads.push_back(random_floats(sn, seed + 1 + s, -0.1f, 0.1f));
    AdamWArgs a;
    a.lr = 3e-3f;
    a.weight_decay = wd;
    DeviceBuffer<float> dp(sn), dm(sn), dv(sn), dg(sn);
    const auto got = same_under_all_schedules<float>([&] {
      dp.upload(p0);
      CUDA_CHECK(cuda::fill(dm.get(), 0.0f, n, nullptr));
      CUDA_CHECK(cuda::fill(dv.get(), 0.0f, n, nullptr));
      for (int s = 0; s < 3; ++s) {
        dg.upload(grads[static_cast<size_t>(s)]);
        AdamWArgs as = a;
        as.step = s + 1;
        CUDA_CHECK(cuda::adamw_step(as, dp.get(), dg.get(), dm.get(), dv.get(), n, nullptr));
      }
      const auto r1 = dp.download(), r2 = dm.download(), r3 = dv.download();
      return cat({&r1, &r2, &r3});
    }, "adamw");
    std::vector<float> p = p0, m(sn, 0.0f), v(sn, 0.0f);
    for (int s = 0; s < 3; ++s) {
      AdamWArgs as = a;
      as.step = s + 1;
      ringtrain::adamw_step(as, p.data(), grads[static_cast<size_t>(s)].data(), m.data(), v.data(), n);
    }
    const auto ref = cat({&p, &m, &v});
    EXPECT_EQ(compare(got.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "adamw p|m|v"), "");
  }
}

// Catches: a partial block's sum lost or counted twice, a partial beyond the grid read (work is
// poisoned), the grid-stride loop stopping after one pass (100003: 49 blocks of 256 threads;
// 600011: the 256-block cap), accumulation in fp32, float atomics (schedule-dependent bits).
TEST(OpsCuda, SumSquaresMatchesCpu) {
  for (int64_t n : {int64_t{1}, int64_t{255}, int64_t{2049}, int64_t{100003}, int64_t{600011}}) {
    const uint64_t seed = 900 + static_cast<uint64_t>(n);
    SCOPED_TRACE("n " + std::to_string(n) + " " + seed_note(seed));
    const auto x = random_floats(static_cast<size_t>(n), seed, -3.0f, 3.0f);
    DeviceBuffer<float> dx(x);
    DeviceBuffer<double> out(1), work(cuda::kSumSquaresBlocks);
    const auto got = same_under_all_schedules<double>([&] {
      out.poison();
      work.poison();
      CUDA_CHECK(cuda::sum_squares(dx.get(), n, out.get(), work.get(), nullptr));
      return out.download();
    }, "sum_squares");
    const double ref = ringtrain::sum_squares(x.data(), n);
    EXPECT_EQ(compare(got.data(), &ref, 1, kF32, "sum_squares"), "");
    // double accumulation: far closer than fp32 could be
    EXPECT_LE(std::fabs(got[0] - ref), 1e-12 * ref);
  }
}

}  // namespace
}  // namespace ringtrain::test
