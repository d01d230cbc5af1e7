// The fp32 attention of kernels/cuda/attention_f32.cu (ops_cuda.h, "fp32 attention") against the
// CPU double reference (kernels/attention_reference.h) and the CPU op (kernels/attention.h), on
// the emulated device under every schedule (bitwise equal across them) and unchanged on a real
// GPU (reruns bitwise equal). Inputs are seeded random floats; outputs that the kernel
// overwrites are poisoned (0xFF = NaN) before each run, outputs it accumulates into start from
// seeded nonzero values. Every comparison uses tests/tolerance.h's kF32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_reference.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cuda/ops_cuda.h"
#include "tests/gpu/gpu_test.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Case {
  int b, s_q, s_k, h, h_kv, d;
  bool causal;
  std::vector<int32_t> q_pos, k_pos;  // empty: 0..s-1
  float scale = 0.0f;
  bool expect_empty_rows = false;  // some query rows see no key (lse -inf, out 0)
  std::vector<int32_t> q_doc = {}, k_doc = {};  // [b, s_q], [b, s_k] document ids; empty: one document
  int window = 0;
  // The first nan_keys keys of every sample hold NaN in K and V on the device (the reference
  // and the CPU op see finite values): a kernel that reads an invisible key returns NaN.
  int nan_keys = 0;
};

std::string describe(const Case& c) {
  return "b " + std::to_string(c.b) + " s_q " + std::to_string(c.s_q) + " s_k " + std::to_string(c.s_k) + " h " +
         std::to_string(c.h) + " h_kv " + std::to_string(c.h_kv) + " d " + std::to_string(c.d) +
         (c.causal ? " causal" : " non-causal") + (c.q_pos.empty() ? "" : " explicit positions") +
         (c.scale != 0.0f ? " scale " + std::to_string(c.scale) : "") + (c.q_doc.empty() ? "" : " documents") +
         (c.window ? " window " + std::to_string(c.window) : "") +
         (c.nan_keys ? " NaN in keys 0.." + std::to_string(c.nan_keys - 1) : "");
}

// The CPU op (kernels/cpu) takes positions only: cases with documents or a window are compared
// with the double reference alone.
bool cpu_op_applies(const Case& c) { return c.q_doc.empty() && c.window == 0; }

size_t q_elems(const Case& c) { return static_cast<size_t>(c.b) * c.s_q * c.h * c.d; }
size_t k_elems(const Case& c) { return static_cast<size_t>(c.b) * c.s_k * c.h_kv * c.d; }
size_t l_elems(const Case& c) { return static_cast<size_t>(c.b) * c.h * c.s_q; }

AttentionArgs host_args(const Case& c) {
  AttentionArgs a;
  a.b = c.b;
  a.s_q = c.s_q;
  a.s_k = c.s_k;
  a.h = c.h;
  a.h_kv = c.h_kv;
  a.d = c.d;
  a.causal = c.causal;
  a.scale = c.scale;
  a.q_pos = c.q_pos.empty() ? nullptr : c.q_pos.data();
  a.k_pos = c.k_pos.empty() ? nullptr : c.k_pos.data();
  a.q_doc = c.q_doc.empty() ? nullptr : c.q_doc.data();
  a.k_doc = c.k_doc.empty() ? nullptr : c.k_doc.data();
  a.window = c.window;
  return a;
}

std::vector<double> widen(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// Positions and document ids on the device (a one-element dummy when the case has none: null
// is passed then).
struct DevicePositions {
  DeviceBuffer<int32_t> q, k, qd, kd;
  static std::vector<int32_t> or_dummy(const std::vector<int32_t>& v) { return v.empty() ? std::vector<int32_t>{0} : v; }
  explicit DevicePositions(const Case& c)
      : q(or_dummy(c.q_pos)), k(or_dummy(c.k_pos)), qd(or_dummy(c.q_doc)), kd(or_dummy(c.k_doc)) {}
  AttentionArgs args(const Case& c) const {
    AttentionArgs a = host_args(c);
    a.q_pos = c.q_pos.empty() ? nullptr : q.get();
    a.k_pos = c.k_pos.empty() ? nullptr : k.get();
    a.q_doc = c.q_doc.empty() ? nullptr : qd.get();
    a.k_doc = c.k_doc.empty() ? nullptr : kd.get();
    return a;
  }
};

// K or V as the device gets it: NaN in the first c.nan_keys keys of every sample.
std::vector<float> with_nan_keys(std::vector<float> x, const Case& c) {
  const size_t row = static_cast<size_t>(c.h_kv) * c.d;
  for (int bi = 0; bi < c.b; ++bi)
    for (size_t e = 0; e < static_cast<size_t>(c.nan_keys) * row; ++e)
      x[static_cast<size_t>(bi) * c.s_k * row + e] = std::numeric_limits<float>::quiet_NaN();
  return x;
}

std::vector<float> concat(std::initializer_list<const std::vector<float>*> parts) {
  std::vector<float> r;
  for (const auto* p : parts) r.insert(r.end(), p->begin(), p->end());
  return r;
}

// Positions of zigzag shard r of a sequence of length s over w ranks: chunks r and 2w-1-r.
std::vector<int32_t> zigzag(int s, int w, int r) {
  const int c = s / (2 * w);
  std::vector<int32_t> p;
  for (int i = 0; i < c; ++i) p.push_back(r * c + i);
  for (int i = 0; i < c; ++i) p.push_back((2 * w - 1 - r) * c + i);
  return p;
}

// n distinct positions drawn from [lo, lo + range), in random order.
std::vector<int32_t> shuffled_positions(int n, int lo, int range, uint64_t seed) {
  std::vector<int32_t> all(static_cast<size_t>(range));
  std::iota(all.begin(), all.end(), lo);
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(n));
  return all;
}

// Rows [b, h, s_q] whose reference lse is -inf.
int64_t count_empty_rows(const std::vector<double>& lse) {
  return std::count(lse.begin(), lse.end(), -std::numeric_limits<double>::infinity());
}

// ---------------------------------------------------------------------------------------------
// Forward

void check_forward(const Case& c, uint64_t seed) {
  SCOPED_TRACE("forward " + describe(c) + " seed " + std::to_string(seed));
  const size_t nq = q_elems(c), nk = k_elems(c), nl = l_elems(c);
  // Scores of O(1..3): the softmax is neither flat nor one-hot.
  const auto q = random_floats(nq, seed, -2.0f, 2.0f), k = random_floats(nk, seed + 1, -2.0f, 2.0f),
             v = random_floats(nk, seed + 2);
  const AttentionArgs ha = host_args(c);
  std::vector<double> ref_out(nq), ref_lse(nl);
  const auto qd = widen(q), kd = widen(k), vd = widen(v);
  attention_reference_forward(ha, qd.data(), kd.data(), vd.data(), ref_out.data(), ref_lse.data());
  std::vector<float> cpu_out(nq), cpu_lse(nl);
  if (cpu_op_applies(c)) attention_forward(ha, q.data(), k.data(), v.data(), cpu_out.data(), cpu_lse.data());

  DeviceBuffer<float> dq(q), dk(with_nan_keys(k, c)), dv(with_nan_keys(v, c)), dout(nq), dlse(nl);
  const DevicePositions pos(c);
  const AttentionArgs da = pos.args(c);
  const auto got = same_under_all_schedules<float>([&] {
    dout.poison();
    dlse.poison();
    CUDA_CHECK(cuda::attention_forward_f32(da, dq.get(), dk.get(), dv.get(), dout.get(), dlse.get(), nullptr));
    const auto o = dout.download(), l = dlse.download();
    return concat({&o, &l});
  }, "attention_forward_f32");
  const float* g_out = got.data();
  const float* g_lse = got.data() + nq;
  EXPECT_EQ(compare(g_out, ref_out.data(), static_cast<int64_t>(nq), kF32, "out vs reference"), "");
  EXPECT_EQ(compare(g_lse, ref_lse.data(), static_cast<int64_t>(nl), kF32, "lse vs reference"), "");
  if (cpu_op_applies(c)) {
    EXPECT_EQ(compare(g_out, cpu_out.data(), static_cast<int64_t>(nq), kF32, "out vs CPU op"), "");
    EXPECT_EQ(compare(g_lse, cpu_lse.data(), static_cast<int64_t>(nl), kF32, "lse vs CPU op"), "");
  }
  // A row that sees no key: lse exactly -inf and out exactly 0 (not NaN, not stale).
  const int64_t empty = count_empty_rows(ref_lse);
  if (c.expect_empty_rows) {
    EXPECT_GT(empty, 0) << "the case was meant to have rows that see no key";
  }
  for (int bi = 0; bi < c.b; ++bi)
    for (int hh = 0; hh < c.h; ++hh)
      for (int i = 0; i < c.s_q; ++i) {
        const size_t li = (static_cast<size_t>(bi) * c.h + hh) * c.s_q + i;
        if (ref_lse[li] != -std::numeric_limits<double>::infinity()) continue;
        ASSERT_EQ(g_lse[li], kNegInf) << "row " << i << " head " << hh;
        const size_t o0 = ((static_cast<size_t>(bi) * c.s_q + i) * c.h + hh) * c.d;
        for (int e = 0; e < c.d; ++e) ASSERT_EQ(g_out[o0 + e], 0.0f) << "row " << i << " head " << hh << " elem " << e;
      }
}

// The shapes every kernel must get right. Each line names what it catches.
std::vector<Case> shape_cases(uint64_t seed) {
  std::vector<Case> cs = {
      {1, 1, 1, 1, 1, 16, true, {}, {}},      // length 1: loop bounds, one key
      {2, 33, 33, 4, 2, 16, true, {}, {}},    // GQA 2, b 2: wrong kv head (j / group) or batch stride
      {1, 37, 37, 4, 1, 64, false, {}, {}},   // MQA, non-causal: a mask applied when it must not be
      {1, 50, 50, 4, 2, 80, true, {}, {}},    // d 80 (not a power of two): head stride / d loop bound
      {2, 40, 23, 4, 4, 64, false, {}, {}},   // s_q != s_k: q and k strides/lengths mixed up
      {1, 23, 40, 2, 1, 80, true, {}, {}},    // s_k > s_q, causal by index: keys past the diagonal used
      {1, 200, 200, 2, 1, 64, true, {}, {}},  // two thread blocks with a tail: block offset, tail rows
      {1, 9, 9, 2, 1, 256, true, {}, {}},     // the largest head dim: local arrays too small
      {1, 31, 31, 4, 2, 64, true, {}, {}, 0.3f},  // explicit scale: scale ignored or 1/sqrt(d) forced
  };
  // One ring step of a zigzag layout (s 256 over 4 ranks, global positions): queries of shard 0
  // against shard 2's keys: the first chunk sees no key (lse -inf, out 0), the second all of them.
  // Catches a causal mask by index instead of position, and garbage in rows with no keys.
  cs.push_back({1, 64, 64, 4, 2, 80, true, zigzag(256, 4, 0), zigzag(256, 4, 2), 0.0f, true});
  // Shard 2's queries against shard 1's keys: every row sees part of the keys, out of order.
  cs.push_back({2, 64, 64, 4, 1, 64, true, zigzag(256, 4, 2), zigzag(256, 4, 1)});
  // Shuffled positions, s_q != s_k, MQA: queries anywhere in [0, 120), keys a shuffled subset;
  // the rows before the first key see nothing. Catches position arrays read at the wrong index.
  {
    Case c{1, 48, 30, 4, 1, 64, true, shuffled_positions(48, 0, 120, seed), shuffled_positions(30, 10, 110, seed + 1)};
    c.q_pos[3] = 0;  // at least one row sees no key (keys start at 10)
    c.expect_empty_rows = true;
    cs.push_back(c);
  }
  // Shuffled positions with d 16, GQA 2, non-causal: positions must be ignored without the mask.
  cs.push_back({1, 20, 35, 4, 2, 16, false, shuffled_positions(20, 0, 50, seed + 2), shuffled_positions(35, 0, 50, seed + 3)});
  return cs;
}

// out and lse against the double reference and the CPU op, rows that see no key exact.
TEST(AttentionF32, ForwardMatchesReferenceAndCpu) {
  const auto cs = shape_cases(100);
  for (size_t i = 0; i < cs.size(); ++i) check_forward(cs[i], 1000 + 10 * i);
}

// ---------------------------------------------------------------------------------------------
// Backward: delta, then dq/dk/dv accumulated into seeded nonzero values.

void check_backward(const Case& c, uint64_t seed) {
  SCOPED_TRACE("backward " + describe(c) + " seed " + std::to_string(seed));
  const size_t nq = q_elems(c), nk = k_elems(c), nl = l_elems(c);
  const auto q = random_floats(nq, seed, -2.0f, 2.0f), k = random_floats(nk, seed + 1, -2.0f, 2.0f),
             v = random_floats(nk, seed + 2), g = random_floats(nq, seed + 3);
  const auto dq0 = random_floats(nq, seed + 4), dk0 = random_floats(nk, seed + 5), dv0 = random_floats(nk, seed + 6);
  const AttentionArgs ha = host_args(c);

  // Reference: gradients of sum(out * g), and delta = rowsum(g * out) from the double out.
  const auto qd = widen(q), kd = widen(k), vd = widen(v), gd = widen(g);
  std::vector<double> ref_out(nq), ref_lse(nl), ref_dq(nq), ref_dk(nk), ref_dv(nk), ref_delta(nl);
  attention_reference_forward(ha, qd.data(), kd.data(), vd.data(), ref_out.data(), ref_lse.data());
  attention_reference_backward(ha, qd.data(), kd.data(), vd.data(), gd.data(), ref_dq.data(), ref_dk.data(),
                               ref_dv.data());
  for (int bi = 0; bi < c.b; ++bi)
    for (int hh = 0; hh < c.h; ++hh)
      for (int i = 0; i < c.s_q; ++i) {
        const size_t o0 = ((static_cast<size_t>(bi) * c.s_q + i) * c.h + hh) * c.d;
        double s = 0.0;
        for (int e = 0; e < c.d; ++e) s += ref_out[o0 + e] * gd[o0 + e];
        ref_delta[(static_cast<size_t>(bi) * c.h + hh) * c.s_q + i] = s;
      }
  for (size_t i = 0; i < nq; ++i) ref_dq[i] += dq0[i];
  for (size_t i = 0; i < nk; ++i) {
    ref_dk[i] += dk0[i];
    ref_dv[i] += dv0[i];
  }
  // The CPU op, from its own forward, accumulating into the same starting values.
  std::vector<float> cpu_out(nq), cpu_lse(nl), cpu_delta(nl), cpu_dq(dq0), cpu_dk(dk0), cpu_dv(dv0);
  if (cpu_op_applies(c)) {
    attention_forward(ha, q.data(), k.data(), v.data(), cpu_out.data(), cpu_lse.data());
    attention_backward_delta(ha, cpu_out.data(), g.data(), cpu_delta.data());
    attention_backward(ha, q.data(), k.data(), v.data(), g.data(), cpu_lse.data(), cpu_delta.data(), cpu_dq.data(),
                       cpu_dk.data(), cpu_dv.data());
  }

  DeviceBuffer<float> dq_in(q), dk_in(with_nan_keys(k, c)), dv_in(with_nan_keys(v, c)), dg(g), dout(nq), dlse(nl), ddelta(nl), gq(nq), gk(nk), gv(nk);
  const DevicePositions pos(c);
  const AttentionArgs da = pos.args(c);
  CUDA_CHECK(cuda::attention_forward_f32(da, dq_in.get(), dk_in.get(), dv_in.get(), dout.get(), dlse.get(), nullptr));
  const auto got = same_under_all_schedules<float>([&] {
    ddelta.poison();
    gq.upload(dq0);
    gk.upload(dk0);
    gv.upload(dv0);
    CUDA_CHECK(cuda::attention_backward_delta_f32(da, dout.get(), dg.get(), ddelta.get(), nullptr));
    CUDA_CHECK(cuda::attention_backward_f32(da, dq_in.get(), dk_in.get(), dv_in.get(), dg.get(), dlse.get(),
                                            ddelta.get(), gq.get(), gk.get(), gv.get(), nullptr));
    const auto x0 = ddelta.download(), x1 = gq.download(), x2 = gk.download(), x3 = gv.download();
    return concat({&x0, &x1, &x2, &x3});
  }, "attention_backward_f32");
  const float* g_delta = got.data();
  const float* g_dq = g_delta + nl;
  const float* g_dk = g_dq + nq;
  const float* g_dv = g_dk + nk;
  const auto n = [](size_t x) { return static_cast<int64_t>(x); };
  EXPECT_EQ(compare(g_delta, ref_delta.data(), n(nl), kF32, "delta vs reference"), "");
  EXPECT_EQ(compare(g_dq, ref_dq.data(), n(nq), kF32, "dq vs reference"), "");
  EXPECT_EQ(compare(g_dk, ref_dk.data(), n(nk), kF32, "dk vs reference"), "");
  EXPECT_EQ(compare(g_dv, ref_dv.data(), n(nk), kF32, "dv vs reference"), "");
  if (cpu_op_applies(c)) {
    EXPECT_EQ(compare(g_delta, cpu_delta.data(), n(nl), kF32, "delta vs CPU op"), "");
    EXPECT_EQ(compare(g_dq, cpu_dq.data(), n(nq), kF32, "dq vs CPU op"), "");
    EXPECT_EQ(compare(g_dk, cpu_dk.data(), n(nk), kF32, "dk vs CPU op"), "");
    EXPECT_EQ(compare(g_dv, cpu_dv.data(), n(nk), kF32, "dv vs CPU op"), "");
  }
  // A row that sees no key adds nothing: its dq row keeps its starting bits exactly.
  for (int bi = 0; bi < c.b; ++bi)
    for (int hh = 0; hh < c.h; ++hh)
      for (int i = 0; i < c.s_q; ++i) {
        if (ref_lse[(static_cast<size_t>(bi) * c.h + hh) * c.s_q + i] != -std::numeric_limits<double>::infinity())
          continue;
        const size_t o0 = ((static_cast<size_t>(bi) * c.s_q + i) * c.h + hh) * c.d;
        ASSERT_EQ(std::memcmp(g_dq + o0, dq0.data() + o0, sizeof(float) * static_cast<size_t>(c.d)), 0)
            << "dq of row " << i << " head " << hh << " (sees no key) changed";
      }
}

// dq/dk/dv (accumulated, +=) and delta against the reference and the CPU op. Catches
// overwriting instead of accumulating, a GQA group not summed into its kv head, P recomputed
// with the wrong lse/mask/scale, a wrong delta, tail rows/keys dropped.
TEST(AttentionF32, BackwardAccumulatesMatchingReferenceAndCpu) {
  const auto cs = shape_cases(200);
  for (size_t i = 0; i < cs.size(); ++i) check_backward(cs[i], 2000 + 10 * i);
}

// ---------------------------------------------------------------------------------------------
// Ring: the keys in two blocks, forward per block merged, backward per block with the FINAL
// lse and delta, equals attention over all keys.

// Rows [j0, j1) of a [b, s, heads, d] tensor (row = heads * d elements).
template <typename T>
std::vector<T> key_rows(const std::vector<T>& x, int b, int s, int row, int j0, int j1) {
  std::vector<T> r;
  for (int bi = 0; bi < b; ++bi)
    r.insert(r.end(), x.begin() + (static_cast<int64_t>(bi) * s + j0) * row, x.begin() + (static_cast<int64_t>(bi) * s + j1) * row);
  return r;
}

void check_split(const Case& c, int split, uint64_t seed) {
  SCOPED_TRACE("two key blocks at " + std::to_string(split) + ": " + describe(c) + " seed " + std::to_string(seed));
  const size_t nq = q_elems(c), nk = k_elems(c), nl = l_elems(c);
  const int krow = c.h_kv * c.d;
  const auto q = random_floats(nq, seed, -2.0f, 2.0f), k = random_floats(nk, seed + 1, -2.0f, 2.0f),
             v = random_floats(nk, seed + 2), g = random_floats(nq, seed + 3);
  const auto dq0 = random_floats(nq, seed + 4);
  const AttentionArgs ha = host_args(c);
  const auto qd = widen(q), kd = widen(k), vd = widen(v), gd = widen(g);
  std::vector<double> ref_out(nq), ref_lse(nl), ref_dq(nq), ref_dk(nk), ref_dv(nk);
  attention_reference_forward(ha, qd.data(), kd.data(), vd.data(), ref_out.data(), ref_lse.data());
  attention_reference_backward(ha, qd.data(), kd.data(), vd.data(), gd.data(), ref_dq.data(), ref_dk.data(),
                               ref_dv.data());
  for (size_t i = 0; i < nq; ++i) ref_dq[i] += dq0[i];

  // The two blocks: keys [0, split) and [split, s_k), with their positions.
  Case c1 = c, c2 = c;
  c1.s_k = split;
  c2.s_k = c.s_k - split;
  std::vector<int32_t> kp = c.k_pos;
  if (kp.empty()) {
    kp.resize(static_cast<size_t>(c.s_k));
    std::iota(kp.begin(), kp.end(), 0);
  }
  if (c.q_pos.empty()) {
    c1.q_pos.resize(static_cast<size_t>(c.s_q));
    std::iota(c1.q_pos.begin(), c1.q_pos.end(), 0);
    c2.q_pos = c1.q_pos;
  }
  c1.k_pos.assign(kp.begin(), kp.begin() + split);
  c2.k_pos.assign(kp.begin() + split, kp.end());
  if (!c.k_doc.empty()) {
    c1.k_doc = key_rows(c.k_doc, c.b, c.s_k, 1, 0, split);
    c2.k_doc = key_rows(c.k_doc, c.b, c.s_k, 1, split, c.s_k);
  }
  const auto k1 = key_rows(k, c.b, c.s_k, krow, 0, split), k2 = key_rows(k, c.b, c.s_k, krow, split, c.s_k);
  const auto v1 = key_rows(v, c.b, c.s_k, krow, 0, split), v2 = key_rows(v, c.b, c.s_k, krow, split, c.s_k);
  const size_t nk1 = k1.size(), nk2 = k2.size();

  DeviceBuffer<float> dq_in(q), dk1(k1), dv1(v1), dk2(k2), dv2(v2), dg(g);
  DeviceBuffer<float> out(nq), lse(nl), out_b(nq), lse_b(nl), delta(nl), gq(nq), gk1(nk1), gv1(nk1), gk2(nk2), gv2(nk2);
  const DevicePositions pos1(c1), pos2(c2);
  const AttentionArgs a1 = pos1.args(c1), a2 = pos2.args(c2);
  const auto got = same_under_all_schedules<float>([&] {
    for (auto* buf : {&out, &lse, &out_b, &lse_b, &delta, &gk1, &gv1, &gk2, &gv2}) buf->poison();
    gq.upload(dq0);
    CUDA_CHECK(cuda::attention_forward_f32(a1, dq_in.get(), dk1.get(), dv1.get(), out.get(), lse.get(), nullptr));
    CUDA_CHECK(cuda::attention_forward_f32(a2, dq_in.get(), dk2.get(), dv2.get(), out_b.get(), lse_b.get(), nullptr));
    CUDA_CHECK(cuda::attention_merge_f32(c.b, c.s_q, c.h, c.d, out.get(), lse.get(), out_b.get(), lse_b.get(), nullptr));
    CUDA_CHECK(cuda::attention_backward_delta_f32(a1, out.get(), dg.get(), delta.get(), nullptr));
    for (auto* buf : {&gk1, &gv1, &gk2, &gv2}) CUDA_CHECK(gpu::memset(buf->get(), 0, buf->size() * sizeof(float)));
    CUDA_CHECK(cuda::attention_backward_f32(a1, dq_in.get(), dk1.get(), dv1.get(), dg.get(), lse.get(), delta.get(),
                                            gq.get(), gk1.get(), gv1.get(), nullptr));
    CUDA_CHECK(cuda::attention_backward_f32(a2, dq_in.get(), dk2.get(), dv2.get(), dg.get(), lse.get(), delta.get(),
                                            gq.get(), gk2.get(), gv2.get(), nullptr));
    const auto o = out.download(), l = lse.download(), x = gq.download(), xk1 = gk1.download(), xv1 = gv1.download(),
               xk2 = gk2.download(), xv2 = gv2.download();
    return concat({&o, &l, &x, &xk1, &xv1, &xk2, &xv2});
  }, "two key blocks");
  const float* p = got.data();
  const auto n = [](size_t x) { return static_cast<int64_t>(x); };
  EXPECT_EQ(compare(p, ref_out.data(), n(nq), kF32, "merged out"), "");
  EXPECT_EQ(compare(p + nq, ref_lse.data(), n(nl), kF32, "merged lse"), "");
  EXPECT_EQ(compare(p + nq + nl, ref_dq.data(), n(nq), kF32, "dq summed over both blocks"), "");
  const float* gk1p = p + nq + nl + nq;
  const float* gv1p = gk1p + nk1;
  const float* gk2p = gv1p + nk1;
  const float* gv2p = gk2p + nk2;
  // Reassemble dk, dv in the full key order.
  std::vector<float> dk_all, dv_all;
  for (int bi = 0; bi < c.b; ++bi) {
    const size_t r1 = static_cast<size_t>(split) * krow, r2 = static_cast<size_t>(c.s_k - split) * krow;
    dk_all.insert(dk_all.end(), gk1p + bi * r1, gk1p + (bi + 1) * r1);
    dk_all.insert(dk_all.end(), gk2p + bi * r2, gk2p + (bi + 1) * r2);
    dv_all.insert(dv_all.end(), gv1p + bi * r1, gv1p + (bi + 1) * r1);
    dv_all.insert(dv_all.end(), gv2p + bi * r2, gv2p + (bi + 1) * r2);
  }
  EXPECT_EQ(compare(dk_all.data(), ref_dk.data(), n(nk), kF32, "dk of both blocks"), "");
  EXPECT_EQ(compare(dv_all.data(), ref_dv.data(), n(nk), kF32, "dv of both blocks"), "");
}

// Forward of two key halves merged equals attention over all keys, and the backward of each
// half given the final lse/delta adds exactly its share. Catches a merge weight swapped or
// formed from the rounded lse, a block's -inf rows poisoning the merge (zigzag: one block
// wholly in the future of some rows), backward using a block-local instead of the final lse.
TEST(AttentionF32, TwoKeyBlocksMergeToWholeAttention) {
  check_split({1, 40, 40, 4, 2, 64, true, {}, {}}, 17, 3000);
  check_split({2, 30, 50, 4, 1, 80, false, {}, {}}, 25, 3010);
  // Zigzag shard 1 attending to shards 1 and 3 (the keys of one ring pass in two steps).
  {
    Case c{1, 32, 64, 4, 2, 16, true, zigzag(128, 4, 1), {}};
    auto k1 = zigzag(128, 4, 1), k3 = zigzag(128, 4, 3);
    c.k_pos = k1;
    c.k_pos.insert(c.k_pos.end(), k3.begin(), k3.end());
    check_split(c, 32, 3020);
  }
  // Zigzag shard 0 against shards 2 and 3: its first chunk sees no key in either block.
  {
    Case c{1, 32, 64, 2, 1, 64, true, zigzag(128, 4, 0), {}};
    auto k2 = zigzag(128, 4, 2), k3 = zigzag(128, 4, 3);
    c.k_pos = k2;
    c.k_pos.insert(c.k_pos.end(), k3.begin(), k3.end());
    check_split(c, 32, 3030);
  }
}

// ---------------------------------------------------------------------------------------------
// Packed documents and sliding windows (AttentionArgs::q_doc, k_doc, window), against the
// double reference (the CPU op has no such mask).

// attention_f32.cu's rows per thread block: the forward and dQ kernels' block of query rows,
// the dK/dV kernel's block of key rows. Document lengths around it put boundaries at, just
// before and just after a block edge.
constexpr int kBlockRows = 128;

// Document ids of a packed sequence: lengths[0] tokens of document first, then the next, ...
std::vector<int32_t> doc_ids(const std::vector<int>& lengths, int first = 0) {
  std::vector<int32_t> ids;
  for (size_t n = 0; n < lengths.size(); ++n) ids.insert(ids.end(), static_cast<size_t>(lengths[n]), first + static_cast<int32_t>(n));
  return ids;
}
// ids[pos[i]]: the ids of a shard whose global positions are pos.
std::vector<int32_t> gather(const std::vector<int32_t>& ids, const std::vector<int32_t>& pos) {
  std::vector<int32_t> r;
  for (int32_t p : pos) r.push_back(ids[static_cast<size_t>(p)]);
  return r;
}

// Two samples of 587 tokens packed differently: documents of 1, 2, block-1, block, block+1
// and 200 tokens, in that order and reversed (ids from 10).
constexpr int kPacked = 1 + 2 + (kBlockRows - 1) + kBlockRows + (kBlockRows + 1) + 200;
Case packed(int b, int h, int h_kv, int d, bool causal, int window) {
  std::vector<int32_t> ids = doc_ids({1, 2, kBlockRows - 1, kBlockRows, kBlockRows + 1, 200});
  if (b == 2) {
    const auto second = doc_ids({200, kBlockRows + 1, kBlockRows, kBlockRows - 1, 2, 1}, 10);
    ids.insert(ids.end(), second.begin(), second.end());
  }
  Case c{b, kPacked, kPacked, h, h_kv, d, causal, {}, {}};
  c.q_doc = c.k_doc = ids;
  c.window = window;
  return c;
}

// A 512-token sequence (documents 1, 2, block-1, block, block+1, 125) over 2 zigzag ranks: the
// queries of shard rq against the keys of shard rk, with their global positions and ids.
const std::vector<int32_t> kZigzagIds = doc_ids({1, 2, kBlockRows - 1, kBlockRows, kBlockRows + 1, 125});
Case zigzag_docs(int rq, int rk, int h, int h_kv, int d, int window) {
  Case c{1, 256, 256, h, h_kv, d, true, zigzag(512, 2, rq), zigzag(512, 2, rk)};
  c.q_doc = gather(kZigzagIds, c.q_pos);
  c.k_doc = gather(kZigzagIds, c.k_pos);
  c.window = window;
  return c;
}

// Each case with the bug it catches.
std::vector<Case> masked_cases() {
  std::vector<Case> cs = {
      // b 2 packed differently, GQA 4: ids read without the per-sample offset, the document
      // term missing or applied in one kernel only (forward, dQ or dK/dV), the 1- and 2-token
      // documents (rows that see only themselves) mishandled.
      packed(2, 4, 1, 16, true, 0),
      // Window 17 with documents, GQA 1: the window edge inside a document, both terms at once.
      packed(2, 2, 2, 32, true, 17),
      // Window 1, no documents: a row sees only itself; catches <= instead of < in the window.
      {1, 130, 130, 4, 1, 16, true, {}, {}, 0.0f, false, {}, {}, 1},
      // Window 256 in one long document (ids all 3, not 0): the window alone, longer than a block.
      {1, 300, 300, 2, 2, 16, true, {}, {}, 0.0f, false, std::vector<int32_t>(300, 3), std::vector<int32_t>(300, 3), 256},
      // Non-causal packed documents, GQA 4: the document term applied only with the causal one.
      packed(1, 4, 1, 16, false, 0),
      // Zigzag shard 0 against shard 1's keys: the first chunk sees no key (lse -inf, out 0,
      // dq unchanged, no NaN), the second sees keys of its own documents out of order.
      zigzag_docs(0, 1, 4, 1, 16, 0),
      // Shard 1 against shard 0 with window 17: the window in global positions, across the gap.
      zigzag_docs(1, 0, 2, 2, 16, 17),
      // Shard 0 against itself with window 17: both chunks' diagonals.
      zigzag_docs(0, 0, 4, 1, 16, 17),
  };
  cs[5].expect_empty_rows = true;
  // 128 queries at the end of a 1024-token sequence of 16-token documents: every earlier key is
  // invisible and holds NaN on the device. Catches a key read (dot product or V row) before the
  // mask is evaluated.
  {
    const int s = 1024, q0 = s - kBlockRows;
    std::vector<int32_t> qp(kBlockRows), kp(static_cast<size_t>(s));
    std::iota(qp.begin(), qp.end(), q0);
    std::iota(kp.begin(), kp.end(), 0);
    const auto ids = doc_ids(std::vector<int>(static_cast<size_t>(s / 16), 16));
    Case c{1, kBlockRows, s, 4, 1, 16, true, qp, kp};
    c.q_doc = gather(ids, qp);
    c.k_doc = ids;
    c.nan_keys = q0;
    cs.push_back(c);
  }
  return cs;
}

TEST(AttentionF32, ForwardDocumentsAndWindows) {
  const auto cs = masked_cases();
  for (size_t i = 0; i < cs.size(); ++i) check_forward(cs[i], 6000 + 10 * i);
}
TEST(AttentionF32, BackwardDocumentsAndWindows) {
  const auto cs = masked_cases();
  for (size_t i = 0; i < cs.size(); ++i) check_backward(cs[i], 6100 + 10 * i);
}

// A ring pass with packed documents: zigzag shard 0's queries against the keys of shards 0 and
// 1 in two blocks, merged, and each block's backward with the final lse/delta. Catches the key
// block's ids not travelling with its keys (ids of the wrong block) and a block in which some
// rows see nothing (shard 1's keys for shard 0's first chunk) spoiling the merge.
TEST(AttentionF32, TwoKeyBlocksWithDocuments) {
  Case c{1, 256, 512, 4, 2, 16, true, zigzag(512, 2, 0), {}};
  const auto k0 = zigzag(512, 2, 0), k1 = zigzag(512, 2, 1);
  c.k_pos = k0;
  c.k_pos.insert(c.k_pos.end(), k1.begin(), k1.end());
  c.q_doc = gather(kZigzagIds, c.q_pos);
  c.k_doc = gather(kZigzagIds, c.k_pos);
  check_split(c, 256, 6200);
  c.window = 17;
  check_split(c, 256, 6210);
}

// ---------------------------------------------------------------------------------------------
// Merge edge cases against the CPU op.

// -inf on either side (no keys yet / a block that saw nothing), both -inf, equal lse, large
// |lse| and lse far apart, against the CPU attention_merge. Catches NaN from -inf - -inf, a
// block with no keys overwriting the running result, weights formed as exp(lse - lse') from
// a rounded lse' (wrong at |lse| ~ 1e3).
TEST(AttentionF32, MergeHandlesMinusInfinityAndLargeLse) {
  const int b = 2, s_q = 5, h = 3, d = 16;
  const size_t nl = static_cast<size_t>(b) * h * s_q, no = nl * d;
  const std::vector<std::pair<float, float>> pairs = {
      {kNegInf, kNegInf}, {kNegInf, 1.5f}, {2.0f, kNegInf}, {0.3f, 0.3f},   {1000.0f, 1000.5f},
      {-3.0f, 4.0f},      {4.0f, -3.0f},   {-1000.25f, -999.0f}, {50.0f, -50.0f}, {0.0f, 1e-3f},
  };
  std::vector<float> lse(nl), lse_b(nl);
  for (size_t i = 0; i < nl; ++i) {
    lse[i] = pairs[i % pairs.size()].first;
    lse_b[i] = pairs[i % pairs.size()].second;
  }
  const auto o = random_floats(no, 4000), ob = random_floats(no, 4001);
  std::vector<float> cpu_o(o), cpu_l(lse);
  attention_merge(b, s_q, h, d, cpu_o.data(), cpu_l.data(), ob.data(), lse_b.data());

  DeviceBuffer<float> dout(no), dlse(nl), dob(ob), dlb(lse_b);
  const auto got = same_under_all_schedules<float>([&] {
    dout.upload(o);
    dlse.upload(lse);
    CUDA_CHECK(cuda::attention_merge_f32(b, s_q, h, d, dout.get(), dlse.get(), dob.get(), dlb.get(), nullptr));
    const auto x = dout.download(), l = dlse.download();
    return concat({&x, &l});
  }, "attention_merge_f32");
  EXPECT_EQ(compare(got.data(), cpu_o.data(), static_cast<int64_t>(no), kF32, "merged out"), "");
  EXPECT_EQ(compare(got.data() + no, cpu_l.data(), static_cast<int64_t>(nl), kF32, "merged lse"), "");
  // Exact cases: a -inf side contributes nothing, bit for bit.
  for (int bi = 0; bi < b; ++bi)
    for (int i = 0; i < s_q; ++i)
      for (int hh = 0; hh < h; ++hh) {
        const size_t li = (static_cast<size_t>(bi) * h + hh) * s_q + i;
        const size_t o0 = ((static_cast<size_t>(bi) * s_q + i) * h + hh) * d;
        const float* g = got.data() + o0;
        if (lse_b[li] == kNegInf) {
          EXPECT_EQ(got[no + li], lse[li]);
          EXPECT_EQ(std::memcmp(g, o.data() + o0, sizeof(float) * d), 0) << "row with an empty block changed";
        } else if (lse[li] == kNegInf) {
          EXPECT_EQ(got[no + li], lse_b[li]);
          EXPECT_EQ(std::memcmp(g, ob.data() + o0, sizeof(float) * d), 0) << "first block not taken as is";
        }
      }
}

// ---------------------------------------------------------------------------------------------

// Shapes the kernels cannot handle fail loudly instead of overflowing the local rows or
// reading a wrong kv head. Catches a missing argument check.
TEST(AttentionF32, RejectsBadShapes) {
  DeviceBuffer<float> x(8 * 512), l(64);
  AttentionArgs a;
  a.s_q = a.s_k = 8;
  a.d = 257;
  EXPECT_THROW(cuda::attention_forward_f32(a, x.get(), x.get(), x.get(), x.get(), l.get(), nullptr), ringtrain::Error);
  a.d = 0;
  EXPECT_THROW(cuda::attention_backward_delta_f32(a, x.get(), x.get(), l.get(), nullptr), ringtrain::Error);
  a.d = 16;
  a.h = 3;
  a.h_kv = 2;
  EXPECT_THROW(cuda::attention_backward_f32(a, x.get(), x.get(), x.get(), x.get(), l.get(), l.get(), x.get(), x.get(),
                                            x.get(), nullptr),
               ringtrain::Error);
}

// Empty blocks: no query rows or no keys. A forward with no keys gives lse -inf and out 0 for
// every row; a backward with no keys adds nothing. Catches a zero-size launch refused, or a
// no-key block leaving out/lse unwritten (poison).
TEST(AttentionF32, EmptyKeyBlock) {
  Case c{1, 5, 0, 2, 1, 16, true, {}, {}};
  const size_t nq = q_elems(c), nl = l_elems(c);
  const auto q = random_floats(nq, 5000), dq0 = random_floats(nq, 5001);
  DeviceBuffer<float> dq(q), kv(16), out(nq), lse(nl), g(q), gq(dq0);
  const AttentionArgs a = host_args(c);
  const auto got = same_under_all_schedules<float>([&] {
    out.poison();
    lse.poison();
    gq.upload(dq0);
    CUDA_CHECK(cuda::attention_forward_f32(a, dq.get(), kv.get(), kv.get(), out.get(), lse.get(), nullptr));
    CUDA_CHECK(cuda::attention_backward_f32(a, dq.get(), kv.get(), kv.get(), g.get(), lse.get(), lse.get(), gq.get(),
                                            kv.get(), kv.get(), nullptr));
    const auto o = out.download(), l = lse.download(), x = gq.download();
    return concat({&o, &l, &x});
  }, "empty key block");
  for (size_t i = 0; i < nq; ++i) ASSERT_EQ(got[i], 0.0f) << i;
  for (size_t i = 0; i < nl; ++i) ASSERT_EQ(got[nq + i], kNegInf) << i;
  EXPECT_EQ(std::memcmp(got.data() + nq + nl, dq0.data(), sizeof(float) * nq), 0);
}

}  // namespace
}  // namespace ringtrain::test
