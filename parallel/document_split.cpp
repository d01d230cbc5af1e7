#include "parallel/document_split.h"

#include <algorithm>
#include <numeric>

#include "src/core/error.h"

namespace ringtrain {

std::vector<std::vector<int32_t>> document_split(const std::vector<int32_t>& docs, int b, int seq_len, int cp,
                                                 int window) {
  RT_CHECK(cp >= 1 && seq_len % (2 * cp) == 0 && static_cast<int64_t>(docs.size()) == static_cast<int64_t>(b) * seq_len,
           "document split of ", docs.size(), " ids for ", b, " x ", seq_len, " over cp ", cp);
  int m = 8;
  while (m > 1 && (seq_len / (2 * cp)) % m != 0) m /= 2;
  const int segments = 2 * cp * m, seg_len = seq_len / segments, per_rank = 2 * m;

  std::vector<double> work(static_cast<size_t>(segments), 0.0);
  for (int bi = 0; bi < b; ++bi) {
    const int32_t* d = docs.data() + static_cast<int64_t>(bi) * seq_len;
    int start = 0;
    for (int p = 0; p < seq_len; ++p) {
      if (p > 0 && d[p] != d[p - 1]) start = p;
      const int seen = p - start + 1;
      work[static_cast<size_t>(p / seg_len)] += window > 0 ? std::min(seen, window) : seen;
    }
  }
  std::vector<int> order(static_cast<size_t>(segments));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return work[static_cast<size_t>(x)] > work[static_cast<size_t>(y)]; });
  std::vector<double> load(static_cast<size_t>(cp), 0.0);
  std::vector<std::vector<int>> owned(static_cast<size_t>(cp));
  for (int seg : order) {
    int best = -1;
    for (int r = 0; r < cp; ++r)
      if (static_cast<int>(owned[static_cast<size_t>(r)].size()) < per_rank &&
          (best < 0 || load[static_cast<size_t>(r)] < load[static_cast<size_t>(best)]))
        best = r;
    owned[static_cast<size_t>(best)].push_back(seg);
    load[static_cast<size_t>(best)] += work[static_cast<size_t>(seg)];
  }
  std::vector<std::vector<int32_t>> positions(static_cast<size_t>(cp));
  for (int r = 0; r < cp; ++r) {
    auto& own = owned[static_cast<size_t>(r)];
    std::sort(own.begin(), own.end());
    for (int seg : own)
      for (int t = 0; t < seg_len; ++t) positions[static_cast<size_t>(r)].push_back(seg * seg_len + t);
  }
  return positions;
}

}  // namespace ringtrain
