// The CUDA flash attention, forward and backward (kernels/cuda/attention_{fwd,bwd}.cu), against the CPU double
// reference, on the emulated device under every schedule (bitwise equal across them) and
// unchanged on a real GPU. Inputs are random, rounded to the input type; the reference sees the
// rounded values. Output and lse are poisoned (0xFF = NaN) before each run.
// Catches: fragment/ldmatrix index errors, wrong online-softmax rescaling, a missing 1/sqrt(d),
// wrong causal mask or positions (global, non-monotone zigzag shards), a tile skipped that was
// needed, tail rows or keys dropped or written twice, wrong GQA head mapping, a pipeline stage
// read before its cp.async landed or overwritten before it was used (schedule-dependent bits),
// rows that see no key (must be out = 0, lse = -inf).
//
// Sizes (emulator ~5 µs per warp mma): the cases below take a few seconds in all on 2 cores;
// length 1000 runs for one bf16 (d = 128, GQA 2) and one fp16 (d = 64) forward case and one
// bf16 (d = 64, GQA 2, causal) backward case.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
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
constexpr Tolerance tol() {
  return std::is_same_v<T, __nv_bfloat16> ? kBF16 : kF16;
}
template <typename T>
const char* type_name() {
  return std::is_same_v<T, __nv_bfloat16> ? "bf16" : "fp16";
}

struct Case {
  int b, s_q, s_k, h, h_kv, d;
  bool causal;
  std::vector<int32_t> q_pos, k_pos;  // empty: 0..s-1
};

std::string describe(const Case& c) {
  return "b " + std::to_string(c.b) + " s_q " + std::to_string(c.s_q) + " s_k " + std::to_string(c.s_k) + " h " +
         std::to_string(c.h) + " h_kv " + std::to_string(c.h_kv) + " d " + std::to_string(c.d) +
         (c.causal ? " causal" : " non-causal") + (c.q_pos.empty() ? "" : " explicit positions");
}

template <typename T>
void check_forward(const Case& c, uint64_t seed) {
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
  std::vector<double> ref_out(nq), ref_lse(nl);
  attention_reference_forward(a, qd.data(), kd.data(), vd.data(), ref_out.data(), ref_lse.data());

  DeviceBuffer<T> dq(qh), dk(kh), dv(vh), dout(nq);
  DeviceBuffer<float> dlse(nl);
  DeviceBuffer<int32_t> dqp(c.q_pos.empty() ? std::vector<int32_t>{0} : c.q_pos),
      dkp(c.k_pos.empty() ? std::vector<int32_t>{0} : c.k_pos);
  AttentionArgs ad = a;
  ad.q_pos = c.q_pos.empty() ? nullptr : dqp.get();
  ad.k_pos = c.k_pos.empty() ? nullptr : dkp.get();
  // out (as float) followed by lse, so the schedules compare both bitwise.
  const auto got = same_under_all_schedules<float>([&] {
    dout.poison();
    dlse.poison();
    CUDA_CHECK(cuda::attention_forward_cuda<T>(ad, dq.get(), dk.get(), dv.get(), dout.get(), dlse.get(), nullptr));
    const auto o = dout.download();
    const auto l = dlse.download();
    std::vector<float> r(o.size() + l.size());
    for (size_t i = 0; i < o.size(); ++i) r[i] = to_f(o[i]);
    for (size_t i = 0; i < l.size(); ++i) r[o.size() + i] = l[i];
    return r;
  }, "attention forward");
  EXPECT_EQ(compare(got.data(), ref_out.data(), static_cast<int64_t>(nq), tol<T>(), "out"), "");
  EXPECT_EQ(compare(got.data() + nq, ref_lse.data(), static_cast<int64_t>(nl), tol<T>(), "lse"), "");
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
void check_backward(const Case& c, uint64_t seed) {
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
  std::vector<double> ref_dq(nq), ref_dk(nk), ref_dv(nk);
  attention_reference_backward(a, qd.data(), kd.data(), vd.data(), gd.data(), ref_dq.data(), ref_dk.data(),
                               ref_dv.data());

  DeviceBuffer<T> dq_in(qh), dk_in(kh), dv_in(vh), dg(gh), dout(nq);
  DeviceBuffer<float> dlse(nl), ddelta(nl), gq(nq), gk(nk), gv(nk);
  DeviceBuffer<int32_t> dqp(c.q_pos.empty() ? std::vector<int32_t>{0} : c.q_pos),
      dkp(c.k_pos.empty() ? std::vector<int32_t>{0} : c.k_pos);
  AttentionArgs ad = a;
  ad.q_pos = c.q_pos.empty() ? nullptr : dqp.get();
  ad.k_pos = c.k_pos.empty() ? nullptr : dkp.get();
  CUDA_CHECK(cuda::attention_forward_cuda<T>(ad, dq_in.get(), dk_in.get(), dv_in.get(), dout.get(), dlse.get(), nullptr));
  const auto got = same_under_all_schedules<float>([&] {
    for (auto* buf : {&ddelta, &gq, &gk, &gv}) buf->poison();
    CUDA_CHECK(cuda::attention_backward_cuda<T>(ad, dq_in.get(), dk_in.get(), dv_in.get(), dout.get(), dg.get(),
                                                dlse.get(), ddelta.get(), gq.get(), gk.get(), gv.get(), nullptr));
    std::vector<float> r;
    for (auto* buf : {&gq, &gk, &gv}) {
      const auto x = buf->download();
      r.insert(r.end(), x.begin(), x.end());
    }
    return r;
  }, "attention backward");
  EXPECT_EQ(compare(got.data(), ref_dq.data(), static_cast<int64_t>(nq), tol<T>(), "dq"), "");
  EXPECT_EQ(compare(got.data() + nq, ref_dk.data(), static_cast<int64_t>(nk), tol<T>(), "dk"), "");
  EXPECT_EQ(compare(got.data() + nq + nk, ref_dv.data(), static_cast<int64_t>(nk), tol<T>(), "dv"), "");
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

TEST(AttentionCuda, BackwardBf16MatchesReference) { backward_cases<__nv_bfloat16>(5100); }
TEST(AttentionCuda, BackwardF16MatchesReference) { backward_cases<__half>(6100); }
TEST(AttentionCuda, BackwardLength1000) {
  check_backward<__nv_bfloat16>({1, 1000, 1000, 2, 1, 64, true, {}, {}}, 7100);
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
