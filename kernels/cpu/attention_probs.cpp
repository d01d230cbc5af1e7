// Attention probabilities on the CPU (kernels/attention_probs.h). Per (sample, head), query
// tiles of kTileQ rows against key tiles of kTileK keys: a tile pair no query can see is
// skipped from the tiles' position (and document) ranges, as the flash kernels skip them; the
// others are one sgemm S = scale Q K^T, then p = exp(S - lse) row by row (the mask evaluated
// only in tiles that straddle a diagonal, document boundary or window edge), scattered to the
// rows, pooled blocks and row statistics of the global positions. Work items are (sample,
// head) pairs, handed to the kernels' thread pool (kernels/cpu/thread_pool.h): each owns its
// slice of all three outputs, so threads never write the same element and the sums keep one
// order.
#include "kernels/attention_probs.h"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/blas_threads.h"
#include "kernels/cpu/cpu_clones.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/vexp.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

constexpr int kTileQ = 64;
constexpr int kTileK = 256;


struct Range {
  int32_t pos_lo, pos_hi, doc_lo, doc_hi;
};

Range range_of(const int32_t* pos, const int32_t* doc, int i0, int n) {
  Range r{std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min(), 0, 0};
  for (int i = i0; i < i0 + n; ++i) {
    const int32_t p = pos ? pos[i] : i;
    r.pos_lo = std::min(r.pos_lo, p);
    r.pos_hi = std::max(r.pos_hi, p);
  }
  if (doc != nullptr) {
    r.doc_lo = *std::min_element(doc + i0, doc + i0 + n);
    r.doc_hi = *std::max_element(doc + i0, doc + i0 + n);
  }
  return r;
}

enum class TileKind { kSkip, kFull, kMasked };

TileKind classify(const AttentionArgs& a, int seq_len, const Range& q, const Range& k) {
  if ((a.causal && k.pos_lo > q.pos_hi) || k.doc_hi < q.doc_lo || k.doc_lo > q.doc_hi ||
      (a.window > 0 && q.pos_lo - k.pos_hi >= a.window) || k.pos_lo >= seq_len || q.pos_lo >= seq_len)
    return TileKind::kSkip;
  const bool full = (!a.causal || k.pos_hi <= q.pos_lo) && q.doc_lo == q.doc_hi && k.doc_lo == k.doc_hi &&
                    q.doc_lo == k.doc_lo && (a.window == 0 || q.pos_hi - k.pos_lo < a.window) &&
                    k.pos_hi < seq_len;
  return full ? TileKind::kFull : TileKind::kMasked;
}

// p[j] = exp(s[j] - l) for the keys of one row (the visible ones: vis[j] != 0, when vis is
// given); returns the row's sums of p (l - s) and p (qp - kp) over the tile. The sums run in
// kLanes independent lanes so that the compiler vectorizes them without reassociating (no
// -ffast-math); the unmasked and masked loops are separate so that the common unmasked one
// reads no mask at all.
constexpr int kLanes = 16;
RT_CPU_CLONES
void lane_sums(const float* s, const float* kpos_f, const float* p, int n, float l, float qp, float* entropy,
               float* distance) {
  float e[kLanes] = {}, d[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int t = 0; t < kLanes; ++t) {
      e[t] += p[j + t] * (l - s[j + t]);
      d[t] += p[j + t] * (qp - kpos_f[j + t]);
    }
  for (; j < n; ++j) {
    e[0] += p[j] * (l - s[j]);
    d[0] += p[j] * (qp - kpos_f[j]);
  }
  float es = 0.0f, ds = 0.0f;
  for (int t = 0; t < kLanes; ++t) {
    es += e[t];
    ds += d[t];
  }
  *entropy = es;
  *distance = ds;
}

RT_CPU_CLONES
void exp_row(const float* s, int n, float l, float* p) {
  for (int j = 0; j < n; ++j) p[j] = cpu::exp_approx(s[j] - l);
}

RT_CPU_CLONES
void exp_row_masked(const float* s, const uint8_t* vis, int n, float l, float* p) {
  for (int j = 0; j < n; ++j) p[j] = cpu::select(vis[j] != 0, cpu::exp_approx(s[j] - l), 0.0f);
}

void row_probs(const float* s, const float* kpos_f, const uint8_t* vis, int n, float l, float qp, float* p,
               float* entropy, float* distance) {
  if (vis == nullptr)
    exp_row(s, n, l, p);
  else
    exp_row_masked(s, vis, n, l, p);
  lane_sums(s, kpos_f, p, n, l, qp, entropy, distance);
}

RT_CPU_CLONES
float lane_sum(const float* x, int n) {
  float acc[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int t = 0; t < kLanes; ++t) acc[t] += x[j + t];
  for (; j < n; ++j) acc[0] += x[j];
  float sum = 0.0f;
  for (int t = 0; t < kLanes; ++t) sum += acc[t];
  return sum;
}

// Runs of consecutive keys of one tile that fall in the same pooled column.
struct BlockRun {
  int begin, end, column;
};

}  // namespace

void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                     const float* lse, float* rows, float* pooled, float* stats) {
  RT_CHECK(a.h % a.h_kv == 0 && p.seq_len > 0 && (p.pool == 0 || p.seq_len % p.pool == 0) && p.n_spans <= 32,
           "attention_probs: h ", a.h, " h_kv ", a.h_kv, " seq_len ", p.seq_len, " pool ", p.pool, " spans ",
           p.n_spans);
  const float scale = a.scale > 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.d));
  const int group = a.h / a.h_kv, sw = p.stat_width(), np = p.n_pool();
  const int64_t q_row = static_cast<int64_t>(a.h) * a.d, k_row = static_cast<int64_t>(a.h_kv) * a.d;
  // Per key: its position as a float (the distance sums) and the spans holding it (bit m).
  std::vector<float> kpos_f(static_cast<size_t>(a.s_k));
  std::vector<uint32_t> kspan(static_cast<size_t>(a.s_k), 0);
  std::vector<int32_t> kblock(static_cast<size_t>(a.s_k), -1);  // pooled column; -1: padding
  for (int j = 0; j < a.s_k; ++j) {
    const int32_t kp = a.k_pos ? a.k_pos[j] : j;
    kpos_f[static_cast<size_t>(j)] = static_cast<float>(kp);
    if (p.pool > 0 && kp < p.seq_len) kblock[static_cast<size_t>(j)] = kp / p.pool;
    for (int m = 0; m < p.n_spans; ++m)
      if (kp >= p.spans[2 * m] && kp < p.spans[2 * m + 1]) kspan[static_cast<size_t>(j)] |= 1u << m;
  }
  const int items = a.b * a.h;
  cpu::BlasSingleThread blas_guard;
  cpu::WorkQueue queue(items);
  auto body = [&](int) {
    // per thread, reused across its items
    std::vector<float> s(static_cast<size_t>(kTileQ) * kTileK), pr(kTileK);
    std::vector<uint8_t> vis(kTileK);
    std::vector<double> ent(kTileQ), dist(kTileQ);
    std::vector<BlockRun> runs;
    for (int64_t next; queue.next(next);) {
      const int item = static_cast<int>(next);
      const int bi = item / a.h, hi = item % a.h;
      const float* qb = q + static_cast<int64_t>(bi) * a.s_q * q_row + static_cast<int64_t>(hi) * a.d;
      const float* kb = k + static_cast<int64_t>(bi) * a.s_k * k_row + static_cast<int64_t>(hi / group) * a.d;
      const float* lb = lse + static_cast<int64_t>(item) * a.s_q;
      const int32_t* qd = a.q_doc ? a.q_doc + static_cast<int64_t>(bi) * a.s_q : nullptr;
      const int32_t* kd = a.k_doc ? a.k_doc + static_cast<int64_t>(bi) * a.s_k : nullptr;
      float* rb = rows ? rows + static_cast<int64_t>(item) * p.n_rows * p.seq_len : nullptr;
      float* pb = pooled ? pooled + static_cast<int64_t>(item) * np * np : nullptr;
      float* sb = stats + static_cast<int64_t>(item) * p.seq_len * sw;
      for (int i0 = 0; i0 < a.s_q; i0 += kTileQ) {
        const int nq = std::min(kTileQ, a.s_q - i0);
        const Range qr = range_of(a.q_pos, qd, i0, nq);
        std::fill(ent.begin(), ent.end(), 0.0);
        std::fill(dist.begin(), dist.end(), 0.0);
        for (int j0 = 0; j0 < a.s_k; j0 += kTileK) {
          const int nk = std::min(kTileK, a.s_k - j0);
          const TileKind kind = classify(a, p.seq_len, qr, range_of(a.k_pos, kd, j0, nk));
          if (kind == TileKind::kSkip) continue;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, a.d, scale, qb + i0 * q_row,
                      static_cast<int>(q_row), kb + j0 * k_row, static_cast<int>(k_row), 0.0f, s.data(), nk);
          runs.clear();
          for (int j = 0; j < nk; ++j) {
            const int32_t c = kblock[static_cast<size_t>(j0 + j)];
            if (c < 0) continue;
            if (!runs.empty() && runs.back().end == j && runs.back().column == c)
              ++runs.back().end;
            else
              runs.push_back({j, j + 1, c});
          }
          bool any_span = false;
          for (int j = 0; j < nk; ++j) any_span = any_span || kspan[static_cast<size_t>(j0 + j)] != 0;
          for (int r = 0; r < nq; ++r) {
            const int i = i0 + r;
            const int32_t qp = a.q_pos ? a.q_pos[i] : i;
            const float l = lb[i];
            if (qp >= p.seq_len || std::isinf(l)) continue;
            if (kind == TileKind::kMasked)
              for (int j = 0; j < nk; ++j) {
                const int32_t kp = a.k_pos ? a.k_pos[j0 + j] : j0 + j;
                vis[static_cast<size_t>(j)] = (!a.causal || kp <= qp) && (a.window == 0 || qp - kp < a.window) &&
                                              (qd == nullptr || qd[i] == kd[j0 + j]) && kp < p.seq_len;
              }
            float e = 0.0f, dd = 0.0f;
            row_probs(s.data() + static_cast<size_t>(r) * nk, kpos_f.data() + j0,
                      kind == TileKind::kMasked ? vis.data() : nullptr, nk, l, static_cast<float>(qp), pr.data(), &e, &dd);
            ent[static_cast<size_t>(r)] += e;
            dist[static_cast<size_t>(r)] += dd;
            const int slot = p.row_slot ? p.row_slot[i] : -1;
            if (slot >= 0) {
              float* row = rb + static_cast<int64_t>(slot) * p.seq_len;
              for (int j = 0; j < nk; ++j)
                if (kind != TileKind::kMasked || vis[static_cast<size_t>(j)])
                  row[a.k_pos ? a.k_pos[j0 + j] : j0 + j] += pr[static_cast<size_t>(j)];
            }
            if (pb != nullptr) {
              float* pool_row = pb + static_cast<int64_t>(qp / p.pool) * np;
              for (const BlockRun& run : runs) pool_row[run.column] += lane_sum(pr.data() + run.begin, run.end - run.begin);
            }
            if (any_span) {
              float* st = sb + static_cast<int64_t>(qp) * sw + kProbStats;
              for (int j = 0; j < nk; ++j)
                for (uint32_t bits = kspan[static_cast<size_t>(j0 + j)]; bits != 0; bits &= bits - 1)
                  st[std::countr_zero(bits)] += pr[static_cast<size_t>(j)];
            }
          }
        }
        for (int r = 0; r < nq; ++r) {
          const int i = i0 + r;
          const int32_t qp = a.q_pos ? a.q_pos[i] : i;
          if (qp >= p.seq_len || std::isinf(lb[i])) continue;
          sb[static_cast<int64_t>(qp) * sw] += static_cast<float>(ent[static_cast<size_t>(r)]);
          sb[static_cast<int64_t>(qp) * sw + 1] += static_cast<float>(dist[static_cast<size_t>(r)]);
        }
      }
    }
  };
  cpu::parallel_run(std::max(1, std::min(attention_cpu_threads(), items)), body);
}

}  // namespace ringtrain
