// The CUDA attention probabilities (kernels/cuda/attention_probs.cu) against the CPU op
// (kernels/cpu/attention_probs.cpp, itself checked against a dense double softmax in
// tests/unit/test_attention_probs.cpp): rows, pooled blocks and row statistics for one block
// of keys at interleaved global positions, GQA 1 and 4, with and without documents and a
// window, a padded tail (positions >= seq_len). The outputs start from seeded nonzero values,
// so a kernel that overwrites instead of accumulating fails; under every emulator schedule the
// bits are the same (no thread order dependence). Tolerance: tests/tolerance.h's kF32.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_probs.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cuda/ops_cuda.h"
#include "tests/gpu/gpu_test.h"
#include "tests/tolerance.h"

namespace ringtrain::test {
namespace {

struct Case {
  int h, h_kv;
  bool docs;
  int window;
  int pool;
};

class AttentionProbsCuda : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionProbsCuda, MatchesCpuOp) {
  const Case c = GetParam();
  const int b = 2, s_q = 36, s_k = 30, d = 24, seq_len = 60;  // keys: the odd positions, some padding
  const uint64_t seed = 77u + static_cast<uint64_t>(c.h_kv * 10 + c.docs + c.window + c.pool);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<int32_t> q_pos(s_q), k_pos(s_k), q_doc(static_cast<size_t>(b) * s_q), k_doc(static_cast<size_t>(b) * s_k);
  for (int i = 0; i < s_q; ++i) q_pos[static_cast<size_t>(i)] = (i * 7) % 64;  // some >= seq_len: padding
  for (int j = 0; j < s_k; ++j) k_pos[static_cast<size_t>(j)] = 2 * j + 1;
  for (int bi = 0; bi < b; ++bi) {
    for (int i = 0; i < s_q; ++i) q_doc[static_cast<size_t>(bi * s_q + i)] = (q_pos[static_cast<size_t>(i)] + 9 * bi) / 17;
    for (int j = 0; j < s_k; ++j) k_doc[static_cast<size_t>(bi * s_k + j)] = (k_pos[static_cast<size_t>(j)] + 9 * bi) / 17;
  }
  const std::vector<float> q = random_floats(static_cast<size_t>(b) * s_q * c.h * d, seed, -1.5f, 1.5f);
  const std::vector<float> k = random_floats(static_cast<size_t>(b) * s_k * c.h_kv * d, seed + 1, -1.5f, 1.5f);
  // Any lse at or above the block's own: a ring's final lse covers more keys than this block.
  std::vector<float> lse = random_floats(static_cast<size_t>(b) * c.h * s_q, seed + 2, 3.0f, 5.0f);
  lse[3] = -INFINITY;  // a row that saw no key at all
  std::vector<int32_t> slot(static_cast<size_t>(s_q), -1);
  slot[2] = 0;
  slot[20] = 1;
  slot[35] = 2;
  const std::vector<int32_t> spans = {0, 2, 11, 30};
  AttentionArgs a;
  a.b = b;
  a.s_q = s_q;
  a.s_k = s_k;
  a.h = c.h;
  a.h_kv = c.h_kv;
  a.d = d;
  a.window = c.window;
  AttentionProbsArgs pa;
  pa.seq_len = seq_len;
  pa.n_rows = 3;
  pa.pool = c.pool;
  pa.n_spans = 2;
  const size_t n_rows = static_cast<size_t>(b) * c.h * pa.n_rows * seq_len;
  const size_t n_pool = static_cast<size_t>(b) * c.h * pa.n_pool() * pa.n_pool();
  const size_t n_stats = static_cast<size_t>(b) * c.h * seq_len * pa.stat_width();
  const std::vector<float> rows0 = random_floats(n_rows, seed + 3), pooled0 = random_floats(std::max<size_t>(1, n_pool), seed + 4),
                           stats0 = random_floats(n_stats, seed + 5);

  // CPU op on host memory.
  AttentionArgs ha = a;
  ha.q_pos = q_pos.data();
  ha.k_pos = k_pos.data();
  if (c.docs) {
    ha.q_doc = q_doc.data();
    ha.k_doc = k_doc.data();
  }
  AttentionProbsArgs hp = pa;
  hp.row_slot = slot.data();
  hp.spans = spans.data();
  std::vector<float> rows = rows0, pooled = pooled0, stats = stats0;
  attention_probs(ha, hp, q.data(), k.data(), lse.data(), rows.data(), c.pool ? pooled.data() : nullptr, stats.data());

  DeviceBuffer<float> dq(q), dk(k), dl(lse), drows(n_rows), dpooled(std::max<size_t>(1, n_pool)), dstats(n_stats);
  DeviceBuffer<int32_t> dqp(q_pos), dkp(k_pos), dqd(q_doc), dkd(k_doc), dslot(slot), dspans(spans);
  AttentionArgs da = a;
  da.q_pos = dqp.get();
  da.k_pos = dkp.get();
  if (c.docs) {
    da.q_doc = dqd.get();
    da.k_doc = dkd.get();
  }
  AttentionProbsArgs dp = pa;
  dp.row_slot = dslot.get();
  dp.spans = dspans.get();
  auto run = [&](int which) {
    return same_under_all_schedules<float>(
        [&]() {
          drows.upload(rows0);
          dpooled.upload(pooled0);
          dstats.upload(stats0);
          CUDA_CHECK(cuda::attention_probs_f32(da, dp, dq.get(), dk.get(), dl.get(), drows.get(),
                                               c.pool ? dpooled.get() : nullptr, dstats.get(), nullptr));
          return which == 0 ? drows.download() : which == 1 ? dpooled.download() : dstats.download();
        },
        which == 0 ? "rows" : which == 1 ? "pooled" : "stats");
  };
  const std::vector<float> g_rows = run(0), g_pooled = run(1), g_stats = run(2);
  EXPECT_EQ(compare(g_rows.data(), rows.data(), static_cast<int64_t>(n_rows), kF32, "rows"), "");
  EXPECT_EQ(compare(g_pooled.data(), pooled.data(), static_cast<int64_t>(pooled.size()), kF32, "pooled"), "");
  EXPECT_EQ(compare(g_stats.data(), stats.data(), static_cast<int64_t>(n_stats), kF32, "stats"), "");
}

INSTANTIATE_TEST_SUITE_P(Masks, AttentionProbsCuda,
                         ::testing::Values(Case{4, 4, false, 0, 6}, Case{4, 1, false, 0, 5}, Case{4, 1, true, 0, 6},
                                           Case{4, 2, true, 13, 10}, Case{2, 2, false, 9, 0}));

}  // namespace
}  // namespace ringtrain::test
