// How evenly the zigzag layout spreads packed documents' attention over the cp ranks, and how
// many ring blocks the plan skips, for document-length mixes of real long-context corpora.
// Work of a rank = visible (query, key) pairs of its queries (exactly counted: a query at
// in-document position p sees min(p + 1, window) keys); the table gives, per packed sample
// (a step waits for its slowest rank), the most loaded rank against the mean, averaged and
// worst over the samples (the bar: within 10%), for the zigzag and for the document-aware
// split (parallel/document_split.h), and the share of ring blocks no query sees. Correctness
// is checked on every run: the pairs summed over ranks equal the pairs of the whole sequence.
//
//   build/bench/bench_cp_balance [--seq 16384] [--samples 64] [--kjv BOOKS.txt]
// BOOKS.txt: one document length per line (e.g. the KJV books in tokens), drawn from in order.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "parallel/attention_plan.h"
#include "parallel/document_split.h"
#include "parallel/zigzag.h"

using namespace ringtrain;

namespace {

struct Mix {
  std::string name;
  std::vector<int> lengths;  // a pool drawn from cyclically (lognormal: a fresh draw each)
  double mu = 0, sigma = 0;  // lognormal parameters when lengths is empty
};

// Document ids of one packed sample of seq tokens (the last document cut at the end).
std::vector<int32_t> pack(const Mix& m, int seq, std::mt19937_64& g, size_t* cursor) {
  std::vector<int32_t> doc(static_cast<size_t>(seq));
  std::lognormal_distribution<double> ln(m.mu, m.sigma);
  int t = 0, d = 0;
  while (t < seq) {
    int len = m.lengths.empty() ? std::max(1, static_cast<int>(ln(g))) : m.lengths[(*cursor)++ % m.lengths.size()];
    for (int i = 0; i < len && t < seq; ++i) doc[static_cast<size_t>(t++)] = d;
    ++d;
  }
  return doc;
}

}  // namespace

int main(int argc, char** argv) {
  int seq = 16384, samples = 64;
  std::string kjv;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seq") seq = std::atoi(argv[i + 1]);
    else if (a == "--samples") samples = std::atoi(argv[i + 1]);
    else if (a == "--kjv") kjv = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_cp_balance: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<Mix> mixes = {
      {"lognormal median 1k (sigma 1.0)", {}, std::log(1024.0), 1.0},
      {"lognormal median 256 (sigma 1.5)", {}, std::log(256.0), 1.5},
      {"lognormal median 4k (sigma 1.2)", {}, std::log(4096.0), 1.2},
  };
  if (!kjv.empty()) {
    Mix m{"KJV books", {}, 0, 0};
    std::ifstream in(kjv);
    for (int len; in >> len;) m.lengths.push_back(len);
    if (m.lengths.empty()) {
      std::fprintf(stderr, "bench_cp_balance: %s holds no lengths\n", kjv.c_str());
      return 2;
    }
    mixes.push_back(m);
  }
  std::printf("seq %d, %d packed samples per mix; work = visible (query, key) pairs\n\n", seq, samples);
  std::printf("| mix | window | cp | zigzag: max rank / mean (avg) | (worst) | document split (avg) | (worst) "
              "| skipped ring blocks (zigzag) | ring hops | pairs check |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  int bad = 0;
  for (const Mix& m : mixes)
    for (int window : {0, 4096})
      for (int cp : {2, 4, 8}) {
        std::mt19937_64 g(1234);
        size_t cursor = 0;
        const Zigzag zz{seq, cp};
        double total = 0, skipped = 0, blocks = 0, hops = 0, summed = 0, ratio_sum = 0, ratio_max = 0;
        double split_sum = 0, split_max = 0, split_summed = 0;
        for (int sidx = 0; sidx < samples; ++sidx) {
          std::vector<double> work(static_cast<size_t>(cp), 0.0);
          const std::vector<int32_t> doc = pack(m, seq, g, &cursor);
          std::vector<int32_t> start(doc.size());  // first position of each token's document
          for (size_t t = 0; t < doc.size(); ++t) start[t] = t > 0 && doc[t] == doc[t - 1] ? start[t - 1] : static_cast<int32_t>(t);
          auto seen = [&](int p) {
            const double k = p - start[static_cast<size_t>(p)] + 1;
            return window > 0 ? std::min<double>(k, window) : k;
          };
          for (int p = 0; p < seq; ++p) total += seen(p);
          std::vector<std::vector<std::vector<FrameRun>>> runs(static_cast<size_t>(cp), std::vector<std::vector<FrameRun>>(1));
          for (int r = 0; r < cp; ++r) {
            const std::vector<int32_t> pos = zz.positions(r);
            std::vector<int32_t> d(pos.size());
            for (size_t t = 0; t < pos.size(); ++t) {
              d[t] = doc[static_cast<size_t>(pos[t])];
              work[static_cast<size_t>(r)] += seen(pos[t]);
            }
            frame_runs(pos.data(), d.data(), static_cast<int>(pos.size()), &runs[static_cast<size_t>(r)][0]);
          }
          std::vector<uint8_t> visible;
          hops += plan_visits(runs, true, window, &visible);
          for (uint8_t v : visible) skipped += v ? 0 : 1;
          blocks += static_cast<double>(visible.size());
          double sum = 0, mx = 0;
          for (double w : work) {
            sum += w;
            mx = std::max(mx, w);
          }
          summed += sum;
          ratio_sum += mx / (sum / cp);
          ratio_max = std::max(ratio_max, mx / (sum / cp));
          // The same sample under the document-aware split.
          const auto split = document_split(doc, 1, seq, cp, window);
          double ssum = 0, smax = 0;
          for (const auto& pos : split) {
            double w = 0;
            for (int32_t p : pos) w += seen(p);
            ssum += w;
            smax = std::max(smax, w);
          }
          split_summed += ssum;
          split_sum += smax / (ssum / cp);
          split_max = std::max(split_max, smax / (ssum / cp));
        }
        const bool ok = summed == total && split_summed == total;
        bad += ok ? 0 : 1;
        std::printf("| %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.1f%% | %.2f of %d | %s |\n", m.name.c_str(), window,
                    cp, ratio_sum / samples, ratio_max, split_sum / samples, split_max, 100.0 * skipped / blocks,
                    hops / samples, cp, ok ? "ok" : "WRONG");
      }
  return bad == 0 ? 0 : 1;
}
