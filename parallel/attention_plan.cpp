#include "parallel/attention_plan.h"

#include <algorithm>

namespace ringtrain {

void frame_runs(const int32_t* pos, const int32_t* doc, int s, std::vector<FrameRun>* runs) {
  runs->clear();
  for (int t = 0; t < s; ++t) {
    const int32_t d = doc ? doc[t] : 0;
    if (!runs->empty() && runs->back().doc == d && runs->back().hi + 1 == pos[t]) {
      runs->back().hi = pos[t];
    } else {
      runs->push_back({d, pos[t], pos[t]});
    }
  }
}

// A query run [q.lo, q.hi] and a key run [k.lo, k.hi] of one document hold the distances
// q.lo - k.hi .. q.hi - k.lo, every value in between taken by some pair. A visible pair needs
// a distance >= 0 (causal) and < window.
bool runs_see(const std::vector<FrameRun>& q, const std::vector<FrameRun>& k, bool causal, int window) {
  for (const FrameRun& a : q)
    for (const FrameRun& b : k) {
      if (a.doc != b.doc) continue;
      if (causal && a.hi < b.lo) continue;
      if (window > 0 && a.lo - b.hi >= window) continue;
      return true;
    }
  return false;
}

int plan_visits(const std::vector<std::vector<std::vector<FrameRun>>>& runs, bool causal, int window,
                std::vector<uint8_t>* visible) {
  const int n = static_cast<int>(runs.size());
  visible->assign(static_cast<size_t>(n) * n, 0);
  int steps = 1;
  for (int qf = 0; qf < n; ++qf)
    for (int kf = 0; kf < n; ++kf) {
      const auto& qs = runs[static_cast<size_t>(qf)];
      const auto& ks = runs[static_cast<size_t>(kf)];
      bool any = false;
      for (size_t bi = 0; bi < qs.size() && !any; ++bi) any = runs_see(qs[bi], ks[bi], causal, window);
      (*visible)[static_cast<size_t>(qf) * n + kf] = any;
      if (any) steps = std::max(steps, 1 + ((qf - kf) % n + n) % n);
    }
  return steps;
}

}  // namespace ringtrain
