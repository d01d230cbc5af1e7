// The CUDA flash attention, forward and backward (kernels/cuda/attention_{fwd,bwd}.cu), against the CPU double
// reference, on the emulated device under every schedule (bitwise equal across them) and
// unchanged on a real GPU. Inputs are random, rounded to the input type; the reference sees the
// rounded values. Output and lse are poisoned (0xFF = NaN) before each run.
// Catches: fragment/ldmatrix index errors, wrong online-softmax rescaling, a missing 1/sqrt(d),
// wrong causal mask or positions (global, non-monotone zigzag shards), a tile skipped that was
// needed, tail rows or keys dropped or written twice, wrong GQA head mapping, a pipeline stage
// read before its cp.async landed (descending+lazy) or overwritten by the next prefetch while
// other warps still read it (ascending+eager; needs three or more key tiles: the length-1000,
// document and backward cases; removing any of the three end-of-loop barriers fails them),
// rows that see no key (must be out = 0, lse = -inf), packed documents and sliding windows (ids
// of the wrong sample, a boundary or window-edge tile run unmasked, a tile with no visible pair
// loaded at all: see SkipsTilesWithNoVisiblePair).
//
// Sizes (emulator ~5 µs per warp mma): the position-only cases take a few seconds in all on 2
// cores, the document and window cases about 10 s more; length 1000 runs for one bf16 (d = 128,
// GQA 2) and one fp16 (d = 64) forward case and one bf16 (d = 64, GQA 2, causal) backward case.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_reference.h"
#include "kernels/cuda/attention_cuda.h"
#include "tests/gpu/gpu_test.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

template <typename T>
T to_t(float x);
template <>
__nv_bfloat16 to_t<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <>
__half to_t<__half>(float x) { return __float2half(x); }
float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
float to_f(__half x) { return __half2float(x); }

template <typename T>
constexpr double unit_roundoff() {
  return std::is_same_v<T, __nv_bfloat16> ? kBf16UnitRoundoff : kF16UnitRoundoff;
}

// Runs under every schedule and checks they agree bitwise, or (when collecting the rounding
// model's statistics over many seeds) once.
std::vector<float> run_checked(const std::function<std::vector<float>()>& run, const std::string& what,
                               bool once) {
  return once ? run() : same_under_all_schedules<float>(run, what);
}

// err / sigma of each quantity (rounding model, tests/tolerance.h).
struct ModelStats {
  SigmaStats out, dq, dk, dv;
};
template <typename T>
const char* type_name() {
  return std::is_same_v<T, __nv_bfloat16> ? "bf16" : "fp16";
}

struct Case {
  int b, s_q, s_k, h, h_kv, d;
  bool causal;
  std::vector<int32_t> q_pos, k_pos;  // empty: 0..s-1
  std::vector<int32_t> q_doc = {}, k_doc = {};  // [b, s_q], [b, s_k] document ids; empty: one document
  int window = 0;
  // The first nan_keys keys of every sample hold NaN in K and V on the device (the reference
  // sees finite values): a kernel that loads a tile of them, masked or not, produces NaN.
  int nan_keys = 0;
};

std::string describe(const Case& c) {
  return "b " + std::to_string(c.b) + " s_q " + std::to_string(c.s_q) + " s_k " + std::to_string(c.s_k) + " h " +
         std::to_string(c.h) + " h_kv " + std::to_string(c.h_kv) + " d " + std::to_string(c.d) +
         (c.causal ? " causal" : " non-causal") + (c.q_pos.empty() ? "" : " explicit positions") +
         (c.q_doc.empty() ? "" : " documents") + (c.window ? " window " + std::to_string(c.window) : "") +
         (c.nan_keys ? " NaN in keys 0.." + std::to_string(c.nan_keys - 1) : "");
}

AttentionArgs host_args(const Case& c) {
  AttentionArgs a;
  a.b = c.b;
  a.s_q = c.s_q;
  a.s_k = c.s_k;
  a.h = c.h;
  a.h_kv = c.h_kv;
  a.d = c.d;
  a.causal = c.causal;
  a.q_pos = c.q_pos.empty() ? nullptr : c.q_pos.data();
  a.k_pos = c.k_pos.empty() ? nullptr : c.k_pos.data();
  a.q_doc = c.q_doc.empty() ? nullptr : c.q_doc.data();
  a.k_doc = c.k_doc.empty() ? nullptr : c.k_doc.data();
  a.window = c.window;
  return a;
}

// Positions and document ids on the device (a one-element dummy where the case has none: null
// is passed then).
struct DeviceMask {
  DeviceBuffer<int32_t> q_pos, k_pos, q_doc, k_doc;
  static std::vector<int32_t> or_dummy(const std::vector<int32_t>& v) { return v.empty() ? std::vector<int32_t>{0} : v; }
  explicit DeviceMask(const Case& c)
      : q_pos(or_dummy(c.q_pos)), k_pos(or_dummy(c.k_pos)), q_doc(or_dummy(c.q_doc)), k_doc(or_dummy(c.k_doc)) {}
  AttentionArgs args(const Case& c) const {
    AttentionArgs a = host_args(c);
    a.q_pos = c.q_pos.empty() ? nullptr : q_pos.get();
    a.k_pos = c.k_pos.empty() ? nullptr : k_pos.get();
    a.q_doc = c.q_doc.empty() ? nullptr : q_doc.get();
    a.k_doc = c.k_doc.empty() ? nullptr : k_doc.get();
    return a;
  }
};

// K or V as the device gets it: NaN in the first c.nan_keys keys of every sample.
template <typename T>
std::vector<T> with_nan_keys(std::vector<T> x, const Case& c) {
  const size_t row = static_cast<size_t>(c.h_kv) * c.d;
  for (int bi = 0; bi < c.b; ++bi)
    for (size_t e = 0; e < static_cast<size_t>(c.nan_keys) * row; ++e)
      x[static_cast<size_t>(bi) * c.s_k * row + e] = to_t<T>(std::numeric_limits<float>::quiet_NaN());
  return x;
}

template <typename T>
void check_forward(const Case& c, uint64_t seed, ModelStats* stats = nullptr) {
  SCOPED_TRACE(std::string(type_name<T>()) + " " + describe(c) + " seed " + std::to_string(seed));
  const size_t nq = static_cast<size_t>(c.b) * c.s_q * c.h * c.d, nk = static_cast<size_t>(c.b) * c.s_k * c.h_kv * c.d;
  const size_t nl = static_cast<size_t>(c.b) * c.h * c.s_q;
  // Scores of O(1..3): the softmax is neither flat nor one-hot.
  const auto qf = random_floats(nq, seed, -2.0f, 2.0f), kf = random_floats(nk, seed + 1, -2.0f, 2.0f),
             vf = random_floats(nk, seed + 2);
  std::vector<T> qh(nq), kh(nk), vh(nk);
  std::vector<double> qd(nq), kd(nk), vd(nk);
  for (size_t i = 0; i < nq; ++i) qd[i] = to_f(qh[i] = to_t<T>(qf[i]));
  for (size_t i = 0; i < nk; ++i) {
    kd[i] = to_f(kh[i] = to_t<T>(kf[i]));
    vd[i] = to_f(vh[i] = to_t<T>(vf[i]));
  }

  const AttentionArgs a = host_args(c);
  std::vector<double> ref_out(nq), ref_lse(nl), sigma_out(nq);
  attention_reference_forward(a, qd.data(), kd.data(), vd.data(), ref_out.data(), ref_lse.data());
  attention_rounding_sigma(a, unit_roundoff<T>(), qd.data(), kd.data(), vd.data(), nullptr, sigma_out.data(), nullptr,
                           nullptr, nullptr);

  DeviceBuffer<T> dq(qh), dk(with_nan_keys(kh, c)), dv(with_nan_keys(vh, c)), dout(nq);
  DeviceBuffer<float> dlse(nl);
  const DeviceMask mask(c);
  const AttentionArgs ad = mask.args(c);
  // out (as float) followed by lse, so the schedules compare both bitwise.
  const auto got = run_checked([&] {
    dout.poison();
    dlse.poison();
    CUDA_CHECK(cuda::attention_forward_cuda<T>(ad, dq.get(), dk.get(), dv.get(), dout.get(), dlse.get(), nullptr));
    const auto o = dout.download();
    const auto l = dlse.download();
    std::vector<float> r(o.size() + l.size());
    for (size_t i = 0; i < o.size(); ++i) r[i] = to_f(o[i]);
    for (size_t i = 0; i < l.size(); ++i) r[o.size() + i] = l[i];
    return r;
  }, "attention forward", stats != nullptr);
  EXPECT_EQ(compare_sigma(got.data(), ref_out.data(), sigma_out.data(), static_cast<int64_t>(nq), kF32, "out",
                          stats ? &stats->out : nullptr), "");
  EXPECT_EQ(compare(got.data() + nq, ref_lse.data(), static_cast<int64_t>(nl), kF32, "lse"), "");
  // A row that sees no key: out exactly 0, lse exactly -inf (compare() already demands the -inf).
  for (size_t li = 0; li < nl; ++li) {
    if (ref_lse[li] != -std::numeric_limits<double>::infinity()) continue;
    const size_t bi = li / (static_cast<size_t>(c.h) * c.s_q), hh = li / c.s_q % c.h, i = li % c.s_q;
    const size_t o0 = ((bi * c.s_q + i) * c.h + hh) * c.d;
    for (int e = 0; e < c.d; ++e) ASSERT_EQ(got[o0 + e], 0.0f) << "row " << i << " head " << hh << " sees no key";
  }
}

// Positions of zigzag shard r of a sequence of length s over w ranks: chunks r and 2w-1-r.
std::vector<int32_t> zigzag(int s, int w, int r) {
  const int c = s / (2 * w);
  std::vector<int32_t> p;
  for (int i = 0; i < c; ++i) p.push_back(r * c + i);
  for (int i = 0; i < c; ++i) p.push_back((2 * w - 1 - r) * c + i);
  return p;
}

template <typename T>
void shapes_and_lengths(uint64_t seed) {
  const std::vector<Case> cases = {
      {1, 1, 1, 2, 2, 64, true, {}, {}},        // length 1, GQA 1
      {2, 17, 17, 4, 1, 64, true, {}, {}},      // GQA 4, tail tiles
      {1, 17, 17, 8, 1, 128, false, {}, {}},    // GQA 8 (MQA), d 128
      {1, 64, 64, 8, 1, 64, true, {}, {}},      // exactly one tile, GQA 8
      {2, 64, 64, 4, 4, 128, false, {}, {}},    // non-causal, d 128
      {1, 100, 100, 4, 4, 128, true, {}, {}},   // two q blocks, straddling + tail tiles
      {1, 100, 100, 8, 2, 64, false, {}, {}},   // GQA 4, non-causal
      {1, 100, 37, 4, 1, 64, false, {}, {}},    // s_k != s_q
  };
  for (size_t i = 0; i < cases.size(); ++i) check_forward<T>(cases[i], seed + 10 * i);
}

TEST(AttentionCuda, ForwardBf16MatchesReference) { shapes_and_lengths<__nv_bfloat16>(1100); }
TEST(AttentionCuda, ForwardF16MatchesReference) { shapes_and_lengths<__half>(2100); }

TEST(AttentionCuda, ForwardLength1000) {
  check_forward<__nv_bfloat16>({1, 1000, 1000, 2, 1, 128, true, {}, {}}, 3100);
  check_forward<__half>({1, 1000, 1000, 1, 1, 64, false, {}, {}}, 3200);
}

// One ring step: a zigzag shard's queries against another shard's keys (global positions, so
// some query rows see every key, some none, and tiles straddle the diagonal out of order).
TEST(AttentionCuda, ForwardRingStepKeyRange) {
  const int s = 256, w = 4;
  for (auto [rq, rk] : {std::pair{1, 2}, std::pair{2, 1}, std::pair{3, 0}, std::pair{1, 1}}) {
    Case c{1, s / w, s / w, 4, 1, 64, true, zigzag(s, w, rq), zigzag(s, w, rk)};
    check_forward<__nv_bfloat16>(c, 4100 + static_cast<uint64_t>(rq * 10 + rk));
    c.d = 128;
    check_forward<__half>(c, 4200 + static_cast<uint64_t>(rq * 10 + rk));
  }
  // Queries far past the keys (all visible: the unmasked path) and keys all in the future.
  std::vector<int32_t> qp(70), kp(70);
  for (int i = 0; i < 70; ++i) {
    qp[static_cast<size_t>(i)] = 1000 + i;
    kp[static_cast<size_t>(i)] = i;
  }
  check_forward<__nv_bfloat16>({1, 70, 70, 2, 2, 64, true, qp, kp}, 4300);
  check_forward<__nv_bfloat16>({1, 70, 70, 2, 2, 64, true, kp, qp}, 4301);
}

// Backward: dq, dk, dv (fp32, overwritten) against the double reference's gradients of
// sum(out * dout), from the kernel's own forward output and lse; delta, dq, dk, dv poisoned
// before every run and bitwise equal across runs (schedules on the emulator, reruns on a GPU).
// Catches: wrong transposed fragments (Kᵀ/Qᵀ/dOᵀ), a wrong delta, P recomputed with the wrong
// lse or mask, a GQA group not summed (or summed into the wrong kv head), tail keys/queries.
template <typename T>
void check_backward(const Case& c, uint64_t seed, ModelStats* stats = nullptr) {
  SCOPED_TRACE(std::string("backward ") + type_name<T>() + " " + describe(c) + " seed " + std::to_string(seed));
  const size_t nq = static_cast<size_t>(c.b) * c.s_q * c.h * c.d, nk = static_cast<size_t>(c.b) * c.s_k * c.h_kv * c.d;
  const size_t nl = static_cast<size_t>(c.b) * c.h * c.s_q;
  const auto qf = random_floats(nq, seed, -2.0f, 2.0f), kf = random_floats(nk, seed + 1, -2.0f, 2.0f),
             vf = random_floats(nk, seed + 2), gf = random_floats(nq, seed + 3);
  std::vector<T> qh(nq), kh(nk), vh(nk), gh(nq);
  std::vector<double> qd(nq), kd(nk), vd(nk), gd(nq);
  for (size_t i = 0; i < nq; ++i) {
    qd[i] = to_f(qh[i] = to_t<T>(qf[i]));
    gd[i] = to_f(gh[i] = to_t<T>(gf[i]));
  }
  for (size_t i = 0; i < nk; ++i) {
    kd[i] = to_f(kh[i] = to_t<T>(kf[i]));
    vd[i] = to_f(vh[i] = to_t<T>(vf[i]));
  }
  const AttentionArgs a = host_args(c);
  std::vector<double> ref_dq(nq), ref_dk(nk), ref_dv(nk), ref_out(nq), ref_lse(nl);
  std::vector<double> sigma_dq(nq), sigma_dk(nk), sigma_dv(nk);
  attention_reference_backward(a, qd.data(), kd.data(), vd.data(), gd.data(), ref_dq.data(), ref_dk.data(),
                               ref_dv.data());
  attention_rounding_sigma(a, unit_roundoff<T>(), qd.data(), kd.data(), vd.data(), gd.data(), nullptr,
                           sigma_dq.data(), sigma_dk.data(), sigma_dv.data());
  attention_reference_forward(a, qd.data(), kd.data(), vd.data(), ref_out.data(), ref_lse.data());

  DeviceBuffer<T> dq_in(qh), dk_in(with_nan_keys(kh, c)), dv_in(with_nan_keys(vh, c)), dg(gh), dout(nq);
  DeviceBuffer<float> dlse(nl), ddelta(nl), gq(nq), gk(nk), gv(nk);
  const DeviceMask mask(c);
  const AttentionArgs ad = mask.args(c);
  CUDA_CHECK(cuda::attention_forward_cuda<T>(ad, dq_in.get(), dk_in.get(), dv_in.get(), dout.get(), dlse.get(), nullptr));
  const auto got = run_checked([&] {
    for (auto* buf : {&ddelta, &gq, &gk, &gv}) buf->poison();
    CUDA_CHECK(cuda::attention_backward_cuda<T>(ad, dq_in.get(), dk_in.get(), dv_in.get(), dout.get(), dg.get(),
                                                dlse.get(), ddelta.get(), gq.get(), gk.get(), gv.get(), nullptr));
    std::vector<float> r;
    for (auto* buf : {&gq, &gk, &gv}) {
      const auto x = buf->download();
      r.insert(r.end(), x.begin(), x.end());
    }
    return r;
  }, "attention backward", stats != nullptr);
  EXPECT_EQ(compare_sigma(got.data(), ref_dq.data(), sigma_dq.data(), static_cast<int64_t>(nq), kF32, "dq",
                          stats ? &stats->dq : nullptr), "");
  EXPECT_EQ(compare_sigma(got.data() + nq, ref_dk.data(), sigma_dk.data(), static_cast<int64_t>(nk), kF32, "dk",
                          stats ? &stats->dk : nullptr), "");
  EXPECT_EQ(compare_sigma(got.data() + nq + nk, ref_dv.data(), sigma_dv.data(), static_cast<int64_t>(nk), kF32, "dv",
                          stats ? &stats->dv : nullptr), "");
  // A row that sees no key has a zero gradient, exactly (no NaN from its -inf lse).
  for (size_t li = 0; li < nl; ++li) {
    if (ref_lse[li] != -std::numeric_limits<double>::infinity()) continue;
    const size_t bi = li / (static_cast<size_t>(c.h) * c.s_q), hh = li / c.s_q % c.h, i = li % c.s_q;
    const size_t o0 = ((bi * c.s_q + i) * c.h + hh) * c.d;
    for (int e = 0; e < c.d; ++e) ASSERT_EQ(got[o0 + e], 0.0f) << "dq of row " << i << " head " << hh << " (sees no key)";
  }
}

template <typename T>
void backward_cases(uint64_t seed) {
  const std::vector<Case> cases = {
      {1, 1, 1, 2, 2, 64, true, {}, {}},        // length 1
      {2, 17, 17, 4, 1, 64, true, {}, {}},      // GQA 4, tails
      {1, 64, 64, 8, 1, 128, false, {}, {}},    // GQA 8, d 128
      {1, 100, 100, 4, 4, 128, true, {}, {}},   // straddling + tail tiles
      {1, 100, 37, 8, 2, 64, false, {}, {}},    // s_k != s_q
      {1, 64, 64, 4, 1, 64, true, zigzag(256, 4, 1), zigzag(256, 4, 2)},  // ring step
      {1, 64, 64, 4, 1, 128, true, zigzag(256, 4, 2), zigzag(256, 4, 1)},
  };
  for (size_t i = 0; i < cases.size(); ++i) check_backward<T>(cases[i], seed + 10 * i);
}

// The rounding model against measurement: over seeds, sequence lengths and head dims, the error
// of each of out, dQ, dK, dV divided by the model's standard deviation has a root mean square
// near 1 (the model neither hides errors nor is loose) and stays under kRoundingSigmas.
// RINGTRAIN_ATTN_MODEL_SEEDS seeds per size (default 2; docs/GPU-EMULATION.md reports 40).
// Catches: a kernel that rounds more than the model says (an extra bf16 round trip of dS or
// O, P rounded before the row sum): the rms ratio goes well above 1.
template <typename T>
void rounding_model_over_seeds(uint64_t seed0) {
  const char* e = std::getenv("RINGTRAIN_ATTN_MODEL_SEEDS");
  const int seeds = e ? std::atoi(e) : 2;
  for (int d : {64, 128})
    for (int s : {64, 256}) {
      ModelStats st;
      for (int i = 0; i < seeds; ++i) {
        const Case c{1, s, s, 4, 2, d, true, {}, {}};
        const uint64_t seed = seed0 + static_cast<uint64_t>(1000 * d + 10 * s + i);
        check_forward<T>(c, seed, &st);
        check_backward<T>(c, seed, &st);
      }
      std::printf("%s s %4d d %3d, %d seeds: err/sigma rms (max): out %.2f (%.1f) dq %.2f (%.1f) dk %.2f (%.1f) dv %.2f (%.1f)\n",
                  type_name<T>(), s, d, seeds, st.out.rms(), st.out.max, st.dq.rms(), st.dq.max, st.dk.rms(), st.dk.max,
                  st.dv.rms(), st.dv.max);
      for (const SigmaStats* q : {&st.out, &st.dq, &st.dk, &st.dv}) {
        EXPECT_GT(q->rms(), 0.5) << "the rounding model overstates the error (s " << s << " d " << d << ")";
        EXPECT_LT(q->rms(), 1.5) << "errors beyond the rounding model (s " << s << " d " << d << ")";
      }
    }
}
TEST(AttentionCuda, Bf16ErrorsFollowTheRoundingModel) { rounding_model_over_seeds<__nv_bfloat16>(9100); }
TEST(AttentionCuda, F16ErrorsFollowTheRoundingModel) { rounding_model_over_seeds<__half>(9200); }

TEST(AttentionCuda, BackwardBf16MatchesReference) { backward_cases<__nv_bfloat16>(5100); }
TEST(AttentionCuda, BackwardF16MatchesReference) { backward_cases<__half>(6100); }
TEST(AttentionCuda, BackwardLength1000) {
  check_backward<__nv_bfloat16>({1, 1000, 1000, 2, 1, 64, true, {}, {}}, 7100);
}

// ---------------------------------------------------------------------------------------------
// Packed documents and sliding windows (AttentionArgs::q_doc, k_doc, window).

// The key tile of the forward and dQ passes and the key block of a dK/dV CTA (whose query tiles
// are half as long, so these lengths straddle those tiles too).
constexpr int kTile = cuda::kAttnFwdKeys;

// Document ids of a packed sequence: lengths[0] tokens of document first, then the next, ...
std::vector<int32_t> doc_ids(const std::vector<int>& lengths, int first = 0) {
  std::vector<int32_t> ids;
  for (size_t n = 0; n < lengths.size(); ++n) ids.insert(ids.end(), static_cast<size_t>(lengths[n]), first + static_cast<int32_t>(n));
  return ids;
}
std::vector<int32_t> concat_ids(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::vector<int32_t> r(a);
  r.insert(r.end(), b.begin(), b.end());
  return r;
}
// ids[pos[i]]: the ids of a shard whose global positions are pos.
std::vector<int32_t> gather(const std::vector<int32_t>& ids, const std::vector<int32_t>& pos) {
  std::vector<int32_t> r;
  for (int32_t p : pos) r.push_back(ids[static_cast<size_t>(p)]);
  return r;
}

// Two samples of 345 tokens with different packings: documents of lengths 1, 2, tile-1, tile,
// tile+1 and 150 in that order and in the reverse one, so each sample's boundaries fall
// elsewhere in the tiles (and ids start at different values).
const std::vector<int> kLayoutA = {1, 2, kTile - 1, kTile, kTile + 1, 150};
const std::vector<int> kLayoutB = {150, kTile + 1, kTile, kTile - 1, 2, 1};
constexpr int kPacked = 345;
Case packed(int b, int h, int h_kv, int d, bool causal, int window) {
  std::vector<int32_t> ids = doc_ids(kLayoutA);
  if (b == 2) ids = concat_ids(ids, doc_ids(kLayoutB, 10));
  Case c{b, kPacked, kPacked, h, h_kv, d, causal, {}, {}};
  c.q_doc = c.k_doc = ids;
  c.window = window;
  return c;
}

// Global sequence of 256 tokens (documents 1, 2, tile-1, tile, tile+1, 61) over 2 zigzag ranks:
// the queries of shard rq against the keys of shard rk, positions and ids gathered.
Case zigzag_docs(int rq, int rk, int h, int h_kv, int d, int window) {
  const auto ids = doc_ids({1, 2, kTile - 1, kTile, kTile + 1, 61});
  Case c{1, 128, 128, h, h_kv, d, true, zigzag(256, 2, rq), zigzag(256, 2, rk)};
  c.q_doc = gather(ids, c.q_pos);
  c.k_doc = gather(ids, c.k_pos);
  c.window = window;
  return c;
}

// Each case with what a kernel gets wrong to fail it.
std::vector<Case> masked_cases() {
  std::vector<Case> cs = {
      // b 2 with different packings, GQA 4, d 64: the ids read for the wrong sample (no per-sample
      // offset), a tile skipped by a document range taken from the first/last token only, a
      // single-id test for "full" that runs a boundary tile unmasked, the 1- and 2-token
      // documents (rows that see only themselves) dropped.
      packed(2, 4, 1, 64, true, 0),
      // The same at d 128, GQA 1: the head-dim-128 kernels' mask path.
      packed(2, 2, 2, 128, true, 0),
      // Window 17 with documents, GQA 4: the window edge inside a document, both terms together.
      packed(2, 4, 1, 64, true, 17),
      // Window 1 (a row sees only itself), no documents, d 128: an off-by-one (<= instead of <)
      // in the window term or in the tile classification's window bounds.
      {1, 130, 130, 2, 2, 128, true, {}, {}, {}, {}, 1},
      // Window 256 over 345 tokens in one long document: the window skips whole tiles far
      // behind the diagonal and runs tiles wholly inside it unmasked; skipping a tile that is
      // still partly inside the window, or running a window-edge tile unmasked, fails.
      {1, kPacked, kPacked, 4, 1, 64, true, {}, {}, std::vector<int32_t>(kPacked, 3), std::vector<int32_t>(kPacked, 3), 256},
      // Window 127 = 2 tiles - 1: a 64-key tile two tiles behind a 64-query tile, and a 32-query
      // tile of the dK/dV pass three half-tiles past a key block, are exactly 127 apart at their
      // far corners, so that corner is the one invisible pair. Catches "every distance below
      // the window" tested with <= (such a tile run unmasked): dq, dk and dv fail; out and lse
      // of that one row move by about 1/128, inside bf16's tolerance.
      {1, 200, 200, 4, 1, 64, true, {}, {}, {}, {}, 127},
      // Non-causal packed documents (both directions inside a document), GQA 4: the document
      // term applied only together with the causal one.
      packed(1, 4, 1, 64, false, 0),
      // Zigzag shard 0's queries against shard 1's keys: the first chunk (positions 0..63) sees
      // no key at all (out 0, lse -inf, dq 0, no NaN), the second sees keys of its documents out
      // of order; catches ranges taken as first/last instead of min/max.
      zigzag_docs(0, 1, 4, 1, 64, 0),
      // Shard 1 against shard 0 with window 17, d 128: window measured in global positions
      // across the shard's gap.
      zigzag_docs(1, 0, 2, 2, 128, 17),
      // Shard 0 against itself with window 17: a shard's own diagonal tiles with both chunks.
      zigzag_docs(0, 0, 4, 1, 64, 17),
  };
  return cs;
}

TEST(AttentionCuda, ForwardDocumentsAndWindowsBf16) {
  const auto cs = masked_cases();
  for (size_t i = 0; i < cs.size(); ++i) check_forward<__nv_bfloat16>(cs[i], 8100 + 10 * i);
}
TEST(AttentionCuda, BackwardDocumentsAndWindowsBf16) {
  const auto cs = masked_cases();
  for (size_t i = 0; i < cs.size(); ++i) check_backward<__nv_bfloat16>(cs[i], 8200 + 10 * i);
}
// fp16 shares the mask code through the element type's template: one packed case catches a
// mask wired into the bf16 instantiation only.
TEST(AttentionCuda, DocumentsF16) {
  check_forward<__half>(packed(2, 4, 1, 64, true, 17), 8300);
  check_backward<__half>(packed(2, 4, 1, 128, true, 0), 8310);
}

// Tile skipping, observed without a clock: keys that no query can see hold NaN on the device,
// so a kernel that loads any tile of them (even to mask it element by element) returns NaN.
// 64 queries at the end of a 512-token sequence: dense causal attention computes all 8 key
// tiles for them; with 32 documents of 16 tokens only the last tile has a visible pair, with a
// window of 17 only the last two. Catches a missing skip (documents or window), and dK/dV of
// a skipped key block left unwritten instead of zero.
TEST(AttentionCuda, SkipsTilesWithNoVisiblePair) {
  const int s = 8 * kTile, q0 = s - kTile;
  std::vector<int32_t> qp(kTile), kp(static_cast<size_t>(s));
  for (int i = 0; i < s; ++i) kp[static_cast<size_t>(i)] = i;
  for (int i = 0; i < kTile; ++i) qp[static_cast<size_t>(i)] = q0 + i;
  const auto ids = doc_ids(std::vector<int>(static_cast<size_t>(s / 16), 16));
  Case docs{1, kTile, s, 4, 1, 64, true, qp, kp, gather(ids, qp), ids, 0, q0};
  check_forward<__nv_bfloat16>(docs, 8400);
  check_backward<__nv_bfloat16>(docs, 8410);
  Case window{1, kTile, s, 2, 2, 128, true, qp, kp, {}, {}, 17, q0 - kTile};
  check_forward<__nv_bfloat16>(window, 8420);
  check_backward<__nv_bfloat16>(window, 8430);
}

// Document ids for one side only cannot mean anything: refused, not read as one document.
TEST(AttentionCuda, RejectsDocumentIdsOnOneSide) {
  AttentionArgs a;
  a.s_q = a.s_k = 8;
  a.d = 64;
  DeviceBuffer<__nv_bfloat16> x(8 * 64);
  DeviceBuffer<float> l(8);
  DeviceBuffer<int32_t> ids(std::vector<int32_t>(8, 0));
  a.q_doc = ids.get();
  EXPECT_THROW(cuda::attention_forward_cuda<__nv_bfloat16>(a, x.get(), x.get(), x.get(), x.get(), l.get(), nullptr),
               ringtrain::Error);
}

// A head dim the kernel has no tiles for fails loudly instead of computing garbage.
TEST(AttentionCuda, RejectsUnsupportedHeadDim) {
  AttentionArgs a;
  a.s_q = a.s_k = 8;
  a.d = 96;
  DeviceBuffer<__nv_bfloat16> x(8 * 96);
  DeviceBuffer<float> l(8);
  EXPECT_THROW(cuda::attention_forward_cuda<__nv_bfloat16>(a, x.get(), x.get(), x.get(), x.get(), l.get(), nullptr),
               ringtrain::Error);
}

}  // namespace
}  // namespace ringtrain::test
