// The two ways a sequence is laid out over cp ranks. Zigzag: positions() and owner() are
// inverse, every position is held once, ranks hold chunks r and 2cp-1-r. The document split:
// every position held exactly once, seq_len / cp per rank, ascending, deterministic, and the
// busiest rank within 10% of the mean for a packed sample with one long document (where the
// zigzag is far off). Catches an off-by-one owner, a split that drops or duplicates tokens, a
// split that is not balanced.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "parallel/document_split.h"
#include "parallel/zigzag.h"

using namespace ringtrain;

TEST(Zigzag, OwnerInvertsPositions) {
  for (int cp : {1, 2, 3, 4, 8})
    for (int seq : {2 * cp, 6 * cp, 64 * cp}) {
      const Zigzag zz{seq, cp};
      std::vector<int> held(static_cast<size_t>(seq), 0);
      for (int r = 0; r < cp; ++r)
        for (int t = 0; t < zz.local_len(); ++t) {
          const int p = zz.position(r, t);
          ++held[static_cast<size_t>(p)];
          EXPECT_EQ(zz.owner(p), r) << "seq " << seq << " cp " << cp << " position " << p;
        }
      EXPECT_TRUE(std::all_of(held.begin(), held.end(), [](int n) { return n == 1; }));
      EXPECT_EQ(zz.owner(0), 0);
      EXPECT_EQ(zz.owner(seq - 1), 0);  // the last chunk is rank 0's second
    }
}

namespace {
// Work of a rank: keys each of its queries sees (causal, inside its document).
double work(const std::vector<int32_t>& pos, const std::vector<int32_t>& docs) {
  double w = 0;
  for (int32_t p : pos) {
    int start = p;
    while (start > 0 && docs[static_cast<size_t>(start - 1)] == docs[static_cast<size_t>(p)]) --start;
    w += p - start + 1;
  }
  return w;
}
}  // namespace

TEST(DocumentSplit, EveryTokenOnceAndBalanced) {
  const int seq = 4096;
  // One long document in the first half, then short ones: the zigzag gives the ranks holding
  // its late part most of the work.
  std::vector<int32_t> docs(static_cast<size_t>(seq));
  for (int t = 0; t < seq; ++t) docs[static_cast<size_t>(t)] = t < 2500 ? 0 : 1 + (t - 2500) / 50;
  for (int cp : {2, 4, 8}) {
    const auto split = document_split(docs, 1, seq, cp, 0);
    ASSERT_EQ(static_cast<int>(split.size()), cp);
    std::vector<int> held(static_cast<size_t>(seq), 0);
    double sum = 0, most = 0;
    for (const auto& pos : split) {
      EXPECT_EQ(static_cast<int>(pos.size()), seq / cp);
      EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end()));
      for (int32_t p : pos) ++held[static_cast<size_t>(p)];
      const double w = work(pos, docs);
      sum += w;
      most = std::max(most, w);
    }
    EXPECT_TRUE(std::all_of(held.begin(), held.end(), [](int n) { return n == 1; })) << "cp " << cp;
    EXPECT_LE(most / (sum / cp), 1.10) << "cp " << cp;
    EXPECT_EQ(document_split(docs, 1, seq, cp, 0), split) << "not deterministic";
    const Zigzag zz{seq, cp};
    double zz_most = 0;
    for (int r = 0; r < cp; ++r) zz_most = std::max(zz_most, work(zz.positions(r), docs));
    EXPECT_GT(zz_most / (sum / cp), 1.10) << "the case no longer shows the zigzag's imbalance (cp " << cp << ")";
  }
}
