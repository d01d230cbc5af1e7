// Attention probabilities (kernels/cpu/attention_probs.cpp) against a dense double-precision
// softmax(scale Q K^T) under the same mask. The keys are fed in two blocks of interleaved
// global positions, as a ring delivers them, with the lse of the whole attention from the
// flash forward: catches a wrong lse (rows not summing to one), a block's columns landing at
// local instead of global positions, a mask that differs from the forward's (causal,
// documents, window), GQA reading the wrong kv head, and statistics over the wrong keys.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_probs.h"
#include "kernels/cpu/ops_cpu.h"
#include "tolerance.h"

namespace ringtrain {
namespace {

using test::compare;
using test::kF32;

struct Case {
  int h, h_kv;
  bool docs;
  int window;
  int s = 48;  // long enough (with queries in position order) that key tiles lie wholly in the
               // past of query tiles: the unmasked path
};

class AttentionProbsTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionProbsTest, MatchesDenseDoubleSoftmax) {
  const Case c = GetParam();
  const int b = 2, s = c.s, d = 16, pool = 8, np = s / pool;
  const uint32_t seed = 1234u + static_cast<uint32_t>(c.h_kv * 10 + c.docs + c.window + c.s);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // Queries in a zigzag-like order; keys in two blocks (even, odd positions).
  std::vector<int32_t> qpos(s), kpos[2], doc(static_cast<size_t>(b) * s);
  for (int i = 0; i < s; ++i) qpos[static_cast<size_t>(i)] = c.s > 48 ? i : (i * 7) % s;
  for (int j = 0; j < s; ++j) kpos[j % 2].push_back(j);
  for (int bi = 0; bi < b; ++bi)
    for (int t = 0; t < s; ++t) doc[static_cast<size_t>(bi * s + t)] = c.docs ? (t + 5 * bi) / 13 : 0;
  std::vector<float> q(static_cast<size_t>(b) * s * c.h * d), k(static_cast<size_t>(b) * s * c.h_kv * d);
  for (auto& x : q) x = nd(gen);
  for (auto& x : k) x = nd(gen);
  // Document ids of the queries and of each key block, per sample.
  std::vector<int32_t> qdoc(static_cast<size_t>(b) * s), kdoc[2];
  for (int bi = 0; bi < b; ++bi) {
    for (int i = 0; i < s; ++i) qdoc[static_cast<size_t>(bi * s + i)] = doc[static_cast<size_t>(bi * s + qpos[static_cast<size_t>(i)])];
    for (int blk = 0; blk < 2; ++blk)
      for (int32_t p : kpos[blk]) kdoc[blk].push_back(doc[static_cast<size_t>(bi * s + p)]);
  }
  auto visible = [&](int bi, int qp, int kp) {
    return kp <= qp && (!c.docs || doc[static_cast<size_t>(bi * s + qp)] == doc[static_cast<size_t>(bi * s + kp)]) &&
           (c.window == 0 || qp - kp < c.window);
  };
  // Dense reference in double, by global positions: P[bi][hh][qp][kp].
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int group = c.h / c.h_kv;
  std::vector<double> P(static_cast<size_t>(b) * c.h * s * s, 0.0);
  for (int bi = 0; bi < b; ++bi)
    for (int hh = 0; hh < c.h; ++hh)
      for (int i = 0; i < s; ++i) {
        const int qp = qpos[static_cast<size_t>(i)];
        std::vector<double> sc(static_cast<size_t>(s), -INFINITY);
        double mx = -INFINITY;
        for (int kp = 0; kp < s; ++kp) {
          if (!visible(bi, qp, kp)) continue;
          double dot = 0.0;
          for (int e = 0; e < d; ++e)
            dot += static_cast<double>(q[((static_cast<size_t>(bi) * s + i) * c.h + hh) * d + e]) *
                   k[((static_cast<size_t>(bi) * s + kp) * c.h_kv + hh / group) * d + e];
          sc[static_cast<size_t>(kp)] = dot * scale;
          mx = std::max(mx, dot * scale);
        }
        double z = 0.0;
        for (double x : sc) z += std::isinf(x) ? 0.0 : std::exp(x - mx);
        for (int kp = 0; kp < s; ++kp)
          if (!std::isinf(sc[static_cast<size_t>(kp)]))
            P[((static_cast<size_t>(bi) * c.h + hh) * s + qp) * s + kp] = std::exp(sc[static_cast<size_t>(kp)] - mx) / z;
      }
  // The lse of the whole attention (flash forward over all keys in position order).
  AttentionArgs full;
  full.b = b;
  full.s_q = full.s_k = s;
  full.h = c.h;
  full.h_kv = c.h_kv;
  full.d = d;
  full.q_pos = qpos.data();
  full.window = c.window;
  std::vector<int32_t> kdoc_all(doc);
  if (c.docs) {
    full.q_doc = qdoc.data();
    full.k_doc = kdoc_all.data();
  }
  std::vector<float> out(q.size()), lse(static_cast<size_t>(b) * c.h * s);
  attention_forward(full, q.data(), k.data(), k.data(), out.data(), lse.data());

  // Two key blocks, every sample's keys of block blk gathered.
  const std::vector<int32_t> wanted = {3, 0, 47, 20};  // query indices (positions 21, 0, 41, 44 at s = 48)
  std::vector<int32_t> slot(static_cast<size_t>(s), -1);
  for (size_t r = 0; r < wanted.size(); ++r) slot[static_cast<size_t>(wanted[r])] = static_cast<int32_t>(r);
  const std::vector<int32_t> spans = {0, 1, 10, 20};
  AttentionProbsArgs pa;
  pa.seq_len = s;
  pa.row_slot = slot.data();
  pa.n_rows = static_cast<int>(wanted.size());
  pa.pool = pool;
  pa.spans = spans.data();
  pa.n_spans = 2;
  const int w = pa.stat_width();
  std::vector<float> rows(static_cast<size_t>(b) * c.h * pa.n_rows * s, 0.0f), pooled(static_cast<size_t>(b) * c.h * np * np, 0.0f),
      stats(static_cast<size_t>(b) * c.h * s * w, 0.0f);
  auto run_blocks = [&](std::vector<float>& r_out, std::vector<float>& p_out, std::vector<float>& s_out) {
    for (int blk = 0; blk < 2; ++blk) {
      const int sk = static_cast<int>(kpos[blk].size());
      std::vector<float> kb(static_cast<size_t>(b) * sk * c.h_kv * d);
      for (int bi = 0; bi < b; ++bi)
        for (int j = 0; j < sk; ++j)
          for (int e = 0; e < c.h_kv * d; ++e)
            kb[(static_cast<size_t>(bi) * sk + j) * c.h_kv * d + e] =
                k[(static_cast<size_t>(bi) * s + kpos[blk][static_cast<size_t>(j)]) * c.h_kv * d + e];
      AttentionArgs a = full;
      a.s_k = sk;
      a.k_pos = kpos[blk].data();
      if (c.docs) a.k_doc = kdoc[blk].data();
      attention_probs(a, pa, q.data(), kb.data(), lse.data(), r_out.data(), p_out.data(), s_out.data());
    }
  };
  run_blocks(rows, pooled, stats);
  // The same on 3 threads of the kernels' pool: each (sample, head) item owns its slice of the
  // outputs, so the results are identical, bit for bit. Catches items shared between threads.
  {
    std::vector<float> rows3(rows.size(), 0.0f), pooled3(pooled.size(), 0.0f), stats3(stats.size(), 0.0f);
    attention_set_cpu_threads(3);
    run_blocks(rows3, pooled3, stats3);
    attention_set_cpu_threads(1);
    EXPECT_TRUE(rows3 == rows && pooled3 == pooled && stats3 == stats) << "3 threads differ from 1";
  }

  std::vector<double> ref_rows(rows.size()), ref_pooled(pooled.size(), 0.0), ref_stats(stats.size(), 0.0);
  for (int bi = 0; bi < b; ++bi)
    for (int hh = 0; hh < c.h; ++hh) {
      const size_t item = static_cast<size_t>(bi) * c.h + hh;
      for (size_t r = 0; r < wanted.size(); ++r)
        for (int kp = 0; kp < s; ++kp)
          ref_rows[(item * wanted.size() + r) * s + kp] = P[(item * s + qpos[static_cast<size_t>(wanted[r])]) * s + kp];
      for (int qp = 0; qp < s; ++qp) {
        double* st = &ref_stats[(item * s + qp) * w];
        for (int kp = 0; kp < s; ++kp) {
          const double p = P[(item * s + qp) * s + kp];
          ref_pooled[(item * np + qp / pool) * np + kp / pool] += p;
          if (p > 0) st[0] -= p * std::log(p);
          st[1] += p * (qp - kp);
          st[2] += kp < 1 ? p : 0.0;
          st[3] += kp >= 10 && kp < 20 ? p : 0.0;
        }
      }
    }
  EXPECT_EQ(compare(rows.data(), ref_rows.data(), static_cast<int64_t>(rows.size()), kF32, "rows"), "");
  EXPECT_EQ(compare(pooled.data(), ref_pooled.data(), static_cast<int64_t>(pooled.size()), kF32, "pooled"), "");
  EXPECT_EQ(compare(stats.data(), ref_stats.data(), static_cast<int64_t>(stats.size()), kF32, "stats"), "");
  // Every pooled row of blocks sums to the pool size (each of its `pool` rows sums to one).
  for (int64_t r = 0; r < static_cast<int64_t>(b) * c.h * np; ++r) {
    double sum = 0.0;
    for (int j = 0; j < np; ++j) sum += pooled[static_cast<size_t>(r * np + j)];
    EXPECT_NEAR(sum, pool, kF32.atol * pool + kF32.rtol * pool) << "pooled row " << r;
  }
  // A key span's mass is the sum of the row over it.
  for (size_t item = 0; item < static_cast<size_t>(b) * c.h; ++item)
    for (size_t r = 0; r < wanted.size(); ++r) {
      double sum = 0.0;
      for (int kp = 10; kp < 20; ++kp) sum += rows[(item * wanted.size() + r) * s + kp];
      const float mass = stats[(item * s + qpos[static_cast<size_t>(wanted[r])]) * w + 3];
      EXPECT_NEAR(mass, sum, kF32.atol + kF32.rtol * sum);
    }
}

INSTANTIATE_TEST_SUITE_P(Masks, AttentionProbsTest,
                         ::testing::Values(Case{4, 4, false, 0}, Case{4, 1, false, 0}, Case{4, 1, true, 0},
                                           Case{4, 4, true, 0}, Case{4, 2, false, 9}, Case{4, 1, true, 9},
                                           Case{4, 2, false, 0, 640}, Case{4, 1, true, 0, 640}));

}  // namespace
}  // namespace ringtrain
