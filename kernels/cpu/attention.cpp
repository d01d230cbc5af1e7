// Flash attention on the CPU (FlashAttention-2's algorithm, Dao 2023, on fp32 tiles).
//
// Forward, per (batch, head, query tile): stream the key tiles; S = scale Q K^T and the running
// O += P V; the softmax is online (running row max m and sum l, O rescaled by exp(m_old -
// m_new)), so only O(tile) memory is ever live. lse = m + log(l).
// Backward, per (batch, kv head, key tile): for every query head of the group and every query
// tile, P = exp(S - lse) is recomputed from the saved lse, then
//   dV += P^T dO;  dP = dO V^T;  dS = P (dP - delta);  dQ += scale dS K;  dK += scale dS^T Q
// (delta = rowsum(dO O), given). With AVX-512 or AVX2 every tile product runs on a
// register-blocked micro-kernel of that ISA (kernels/cpu/tile_kernels.h) that reads its
// operands in place: the d-wide ones (O, dV, dQ, dK) read the score tile transposed or not, the
// score tiles (S, dP) read a per-thread transposed copy of the key (value) tile; on other CPUs
// (or RINGTRAIN_CPU_ISA=generic) they are sgemm calls. OpenBLAS packed both operands of every
// call, which at these sizes (128 x 128 x d) cost about a third of the kernel's time. Tiles:
// square when masked, wider without a mask, sized from the L2 cache (attention_cpu.h). dK/dV of a
// key tile are owned by one work item; dQ is shared between key tiles, so with several threads
// each thread accumulates into its own dQ copy. Threads: kernels/cpu/thread_pool.h.
//
// Masking uses explicit global positions and, for packed documents, document ids: per tile the
// min/max position (shared by the samples) and per (sample, tile) the min/max document id are
// precomputed. A tile is skipped when no pair in it can be visible (every key in the future,
// every key at least a window back, or no document in common), unmasked when every pair is
// (entirely in the past, within the window, one and the same document on both sides), and only
// the tiles straddling a diagonal, window edge or document boundary evaluate the mask element by
// element; calls without documents or window keep the plain causal comparison. GQA: query head
// j reads kv head j / (h / h_kv) in place, through the sgemm leading dimension.
#include "kernels/attention.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/blas_threads.h"
#include "kernels/cpu/cpu_clones.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/tile_kernels.h"
#include "kernels/cpu/vexp.h"
#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The tile loops (exp, mask, rescale) run in RT_CPU_CLONES (cpu_clones.h): worth about 15% of
// the whole forward+backward at d = 64.

std::atomic<int> g_threads{1};
thread_local size_t t_last_workspace = 0;
thread_local int64_t t_last_scores = 0;

struct PosRange {
  int32_t lo, hi;
};

struct Geom {
  int64_t q_row, k_row;  // floats between consecutive tokens of q (h*d) and of k (h_kv*d)
  int group;             // query heads per kv head
  float scale;
  int tq, tk;            // query / key tile sizes of this call
  int nqt, nkt;          // query / key tiles
  const cpu::TileKernels* mk;  // the tile products' micro-kernels; null: sgemm
};

// Tiles (attention_cpu.h's attention_tiles, sized from the L2 cache read at start): square
// ones for masked calls (causal, documents or window; the tiles on a mask edge are masked
// work, part of it wasted; packed documents: kAttnTilePacked). Without a mask no tile is
// wasted, and wider key tiles mean fewer tile products per flop.
Geom make_geom(const AttentionArgs& a, bool backward) {
  RT_CHECK(a.b >= 0 && a.s_q >= 0 && a.s_k >= 0 && a.d > 0, "attention: bad sizes b=", a.b,
           " s_q=", a.s_q, " s_k=", a.s_k, " d=", a.d);
  RT_CHECK(a.h_kv > 0 && a.h > 0 && a.h % a.h_kv == 0, "attention: h=", a.h,
           " is not a multiple of h_kv=", a.h_kv);
  Geom g;
  g.q_row = static_cast<int64_t>(a.h) * a.d;
  g.k_row = static_cast<int64_t>(a.h_kv) * a.d;
  g.group = a.h / a.h_kv;
  g.scale = a.scale != 0.0f ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.d));
  const bool masked = a.causal || a.q_doc != nullptr || a.window > 0;
  const cpu::AttnTiles t = cpu::attention_tiles(a.d);
  g.tq = masked ? t.q : (backward ? t.q_wide : t.q);
  g.tk = masked ? t.k : t.k_wide;
  if (a.q_doc != nullptr) g.tq = g.tk = cpu::kAttnTilePacked;
  g.nqt = (a.s_q + g.tq - 1) / g.tq;
  g.nkt = (a.s_k + g.tk - 1) / g.tk;
  g.mk = cpu::tile_kernels();
  return g;
}

// Min/max of each tile of `tile` consecutive entries of v (v null: the index 0..n-1), into r
// (a reused buffer) from r[0]. Positions and document ids alike: neither is assumed sorted
// within a tile (a zigzag shard's tile may hold the end of one chunk and the start of the other).
void tile_ranges(const int32_t* v, int n, int tile, PosRange* r) {
  const int nt = (n + tile - 1) / tile;
  for (int t = 0; t < nt; ++t) {
    const int i0 = t * tile, i1 = std::min(n, i0 + tile);
    if (v == nullptr) {
      r[t] = {i0, i1 - 1};
      continue;
    }
    int32_t lo = v[i0], hi = v[i0];
    for (int i = i0 + 1; i < i1; ++i) {
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    r[t] = {lo, hi};
  }
}

// The calling thread's buffers of one kernel call (tile ranges, per-thread dQ partials),
// reused across calls: a steady-state training step allocates nothing here. Taken by
// reference BEFORE a parallel region (inside it, the name would be each thread's own).
struct CallBuffers {
  std::vector<PosRange> qr, kr;    // position range of each query / key tile
  std::vector<PosRange> qdr, kdr;  // document id range of each (sample, tile): [b, nqt] / [b, nkt]
  std::vector<float> dq_part;
};
CallBuffers& call_buffers() {
  thread_local CallBuffers b;
  return b;
}

// Everything classify and the mask read: the args' mask terms and the call's tile ranges.
struct Mask {
  bool causal;
  int window;                      // 0: none
  const int32_t *q_pos, *k_pos;    // null: 0..s-1
  const int32_t *q_doc, *k_doc;    // null: one document
  const PosRange *qr, *kr, *qdr, *kdr;
  int s_q, s_k, nqt, nkt;
  bool simple() const { return q_doc == nullptr && window == 0; }
};

Mask prepare_mask(const AttentionArgs& a, const Geom& g, CallBuffers& cb) {
  RT_CHECK((a.q_doc == nullptr) == (a.k_doc == nullptr),
           "attention: document ids given for one side only (q_doc and k_doc go together)");
  RT_CHECK(a.window >= 0, "attention: window must be >= 0, got ", a.window);
  ws::ensure_size(cb.qr, static_cast<size_t>(g.nqt));
  ws::ensure_size(cb.kr, static_cast<size_t>(g.nkt));
  tile_ranges(a.q_pos, a.s_q, g.tq, cb.qr.data());
  tile_ranges(a.k_pos, a.s_k, g.tk, cb.kr.data());
  const bool docs = a.q_doc != nullptr;
  // Document ids differ per sample, so their ranges are per (sample, tile); positions are shared.
  ws::ensure_size(cb.qdr, docs ? static_cast<size_t>(a.b) * g.nqt : 0);
  ws::ensure_size(cb.kdr, docs ? static_cast<size_t>(a.b) * g.nkt : 0);
  for (int bi = 0; docs && bi < a.b; ++bi) {
    tile_ranges(a.q_doc + static_cast<int64_t>(bi) * a.s_q, a.s_q, g.tq,
                cb.qdr.data() + static_cast<int64_t>(bi) * g.nqt);
    tile_ranges(a.k_doc + static_cast<int64_t>(bi) * a.s_k, a.s_k, g.tk,
                cb.kdr.data() + static_cast<int64_t>(bi) * g.nkt);
  }
  return Mask{a.causal, a.window, a.q_pos, a.k_pos, a.q_doc, a.k_doc, cb.qr.data(), cb.kr.data(),
              cb.qdr.data(), cb.kdr.data(), a.s_q, a.s_k, g.nqt, g.nkt};
}

size_t range_bytes(const CallBuffers& cb) {
  return sizeof(PosRange) * (cb.qr.size() + cb.kr.size() + cb.qdr.size() + cb.kdr.size());
}

enum class TileKind { kSkip, kFull, kMasked };

// Skip when no pair of the tile can be visible, kFull when every pair is, from the tile ranges
// alone (so a tile's range may be wider than the values it holds: the answer stays safe).
// Differences of positions in int64: positions are any int32.
TileKind classify(const Mask& m, int bi, int qt, int kt) {
  const PosRange q = m.qr[qt], k = m.kr[kt];
  bool full = true;
  if (m.causal) {
    if (k.lo > q.hi) return TileKind::kSkip;  // every key after every query
    full = k.hi <= q.lo;                      // every key at or before every query
  }
  if (m.window > 0) {
    if (static_cast<int64_t>(q.lo) - k.hi >= m.window) return TileKind::kSkip;  // all too far back
    full = full && static_cast<int64_t>(q.hi) - k.lo < m.window;
  }
  if (m.q_doc != nullptr) {
    const PosRange qd = m.qdr[static_cast<int64_t>(bi) * m.nqt + qt];
    const PosRange kd = m.kdr[static_cast<int64_t>(bi) * m.nkt + kt];
    if (qd.hi < kd.lo || kd.hi < qd.lo) return TileKind::kSkip;  // no document in common
    full = full && qd.lo == qd.hi && kd.lo == kd.hi && qd.lo == kd.lo;
  }
  return full ? TileKind::kFull : TileKind::kMasked;
}

// S[nq, nk] (row stride ld) of sample bi, query rows from i0, keys from j0 <- -inf where the
// pair is not visible (kernels/attention.h's mask).
void apply_mask(const Mask& m, float* s, int ld, int nq, int nk, int bi, int i0, int j0) {
  if (m.simple()) {  // causal only, the dense path: one comparison per element
    for (int i = 0; i < nq; ++i) {
      const int32_t qp = m.q_pos ? m.q_pos[i0 + i] : i0 + i;
      float* row = s + static_cast<int64_t>(i) * ld;
      if (m.k_pos) {
        for (int j = 0; j < nk; ++j) row[j] = m.k_pos[j0 + j] > qp ? kNegInf : row[j];
      } else {
        for (int j = 0; j < nk; ++j) row[j] = j0 + j > qp ? kNegInf : row[j];
      }
    }
    return;
  }
  // A key at kp is visible to a query at qp when lo <= kp <= hi (window and causality) and its
  // document is the query's; the no-position case materializes j0..j0+nk-1 once per tile.
  int32_t kidx[cpu::kAttnTileKMax];
  const int32_t* kp = m.k_pos ? m.k_pos + j0 : kidx;
  if (!m.k_pos)
    for (int j = 0; j < nk; ++j) kidx[j] = j0 + j;
  const int32_t* qdoc = m.q_doc ? m.q_doc + static_cast<int64_t>(bi) * m.s_q + i0 : nullptr;
  const int32_t* kdoc = m.k_doc ? m.k_doc + static_cast<int64_t>(bi) * m.s_k + j0 : nullptr;
  constexpr int64_t kMin = std::numeric_limits<int32_t>::min(), kMax = std::numeric_limits<int32_t>::max();
  for (int i = 0; i < nq; ++i) {
    const int64_t qp = m.q_pos ? m.q_pos[i0 + i] : i0 + i;
    const int32_t hi = static_cast<int32_t>(m.causal ? qp : kMax);
    const int32_t lo = static_cast<int32_t>(m.window > 0 ? std::max(kMin, qp - m.window + 1) : kMin);
    float* row = s + static_cast<int64_t>(i) * ld;
    if (qdoc) {
      const int32_t dq = qdoc[i];
      for (int j = 0; j < nk; ++j)
        row[j] = cpu::select(kp[j] >= lo && kp[j] <= hi && kdoc[j] == dq, row[j], kNegInf);
    } else {
      for (int j = 0; j < nk; ++j) row[j] = cpu::select(kp[j] >= lo && kp[j] <= hi, row[j], kNegInf);
    }
  }
}

// The parts of a (query tile, key tile) pair to compute: rows [r0, r1) x keys [c0, c1), tile
// relative. Without documents, or on a tile of one document, the whole tile. On a masked tile
// with documents, one rectangle per run of query rows of one document: those rows against the
// keys from the first to the last of that document in the key tile (none: nothing). Short
// packed documents then cost their own squares, not the tile's: with 100-token documents a
// 128 x 128 diagonal tile holds two or three of them, about a third of its area. The
// rectangles still get the element-wise mask (causality, window, and ids that a layout might
// interleave). Kept apart from the tile loops so those stay in the per-ISA clones.
struct Block {
  int r0, r1, c0, c1;
};
class TileBlocks {
 public:
  TileBlocks(const Mask& m, TileKind kind, int bi, int i0, int nq, int j0, int nk)
      : nq_(nq), nk_(nk), whole_(kind != TileKind::kMasked || m.q_doc == nullptr) {
    if (!whole_) {
      qdoc_ = m.q_doc + static_cast<int64_t>(bi) * m.s_q + i0;
      kdoc_ = m.k_doc + static_cast<int64_t>(bi) * m.s_k + j0;
    }
  }
  bool next(Block& b) {
    if (whole_) {
      if (r_ > 0) return false;
      r_ = nq_;
      b = {0, nq_, 0, nk_};
      return true;
    }
    while (r_ < nq_) {
      const int32_t doc = qdoc_[r_];
      const int r0 = r_;
      while (r_ < nq_ && qdoc_[r_] == doc) ++r_;
      int c0 = 0, c1 = nk_;
      while (c0 < nk_ && kdoc_[c0] != doc) ++c0;
      while (c1 > c0 && kdoc_[c1 - 1] != doc) --c1;
      if (c0 < c1) {
        b = {r0, r_, c0, c1};
        return true;
      }
    }
    return false;
  }

 private:
  int nq_, nk_;
  bool whole_;
  const int32_t* qdoc_ = nullptr;
  const int32_t* kdoc_ = nullptr;
  int r_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The tile products: on the micro-kernels of the CPU's ISA where there are some
// (kernels/cpu/tile_kernels.h, g.mk), else sgemm calls.

// Row stride of a transposed key tile (the score tiles' B operand on the micro-kernels).
constexpr int64_t kKeysTLd = cpu::kAttnTileKMax + 16;

// C[m, d] += alpha op(A) B with op(A)[m, kn] = A (trans_a false, row stride lda) or A^T;
// B [kn, d] row-major (ldb), C row-major (ldc).
void gemm_nd(const Geom& g, bool trans_a, int m, int d, int kn, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (g.mk != nullptr && g.mk->supports_d(d))
    return g.mk->gemm_nd(m, d, kn, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, ldb, c, ldc);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, m, d, kn, alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), 1.0f, c, static_cast<int>(ldc));
}

// bt (row stride kKeysTLd) <- keys [0, nk) at src (row stride ld) transposed; nothing on sgemm.
void keys_t(const Geom& g, const float* src, int64_t ld, int nk, int d, float* bt) {
  if (g.mk != nullptr) g.mk->transpose_keys(src, ld, nk, d, bt, kKeysTLd);
}

// C[m, n] = alpha A B^T, a score tile: B's rows are n keys in place at b (row stride ldb), also
// given transposed at bt (row stride kKeysTLd) on the micro-kernels. C's row stride must hold
// n rounded up to 16.
void score_tile(const Geom& g, int m, int n, int d, float alpha, const float* a, int64_t lda, const float* bt,
                const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (g.mk != nullptr) return g.mk->gemm_nt(m, n, d, alpha, a, lda, bt, kKeysTLd, c, ldc);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), 0.0f, c, static_cast<int>(ldc));
}

int threads_for(int64_t work_items) {
  const int t = g_threads.load(std::memory_order_relaxed);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(t, work_items)));
}

// ---------------------------------------------------------------------------------------------
// Forward

struct FwdScratch {
  std::vector<float> s, o, m, l, kt;
  void ensure(int d, bool with_kt) {
    // sized for the largest tiles, so causal and non-causal calls share one buffer
    ws::ensure_size(s, static_cast<size_t>(cpu::kAttnTileQMax) * cpu::kAttnTileKMax);
    ws::ensure_size(kt, with_kt ? static_cast<size_t>(d) * kKeysTLd : 0);
    ws::ensure_size(o, static_cast<size_t>(cpu::kAttnTileQMax) * d);
    ws::ensure_size(m, cpu::kAttnTileQMax);
    ws::ensure_size(l, cpu::kAttnTileQMax);
  }
  size_t bytes() const { return sizeof(float) * (s.size() + o.size() + m.size() + l.size() + kt.size()); }
};

RT_CPU_CLONES
void forward_tile(const AttentionArgs& a, const Geom& g, const Mask& mask, const float* q, const float* k,
                  const float* v, float* out, float* lse, int bi, int hh, int qt, FwdScratch& w,
                  int64_t& scores) {
  const int d = a.d, kvh = hh / g.group;
  const int i0 = qt * g.tq, nq = std::min(g.tq, a.s_q - i0);
  const int ld = g.tk;
  const float* qp = q + (static_cast<int64_t>(bi) * a.s_q + i0) * g.q_row + static_cast<int64_t>(hh) * d;
  float* s = w.s.data();
  float* o = w.o.data();
  float* m = w.m.data();
  float* l = w.l.data();
  std::fill(o, o + static_cast<int64_t>(nq) * d, 0.0f);
  std::fill(m, m + nq, kNegInf);
  std::fill(l, l + nq, 0.0f);

  for (int kt = 0; kt < g.nkt; ++kt) {
    const TileKind kind = classify(mask, bi, qt, kt);
    if (kind == TileKind::kSkip) continue;
    const int kj0 = kt * g.tk, knk = std::min(g.tk, a.s_k - kj0);
    keys_t(g, k + (static_cast<int64_t>(bi) * a.s_k + kj0) * g.k_row + static_cast<int64_t>(kvh) * d, g.k_row, knk, d,
           w.kt.data());
    TileBlocks blocks(mask, kind, bi, i0, nq, kj0, knk);
    for (Block blk; blocks.next(blk);) {
      // rows r0 + [0, nb) of the query tile against keys j0 + [0, nk)
      const int r0 = blk.r0, nb = blk.r1 - blk.r0, j0 = kj0 + blk.c0, nk = blk.c1 - blk.c0;
      scores += static_cast<int64_t>(nb) * nk;
      const int64_t koff = (static_cast<int64_t>(bi) * a.s_k + j0) * g.k_row + static_cast<int64_t>(kvh) * d;
      // S = scale Q K^T
      score_tile(g, nb, nk, d, g.scale, qp + r0 * g.q_row, g.q_row, w.kt.data() + blk.c0, k + koff, g.k_row, s, ld);
      if (kind == TileKind::kMasked) apply_mask(mask, s, ld, nb, nk, bi, i0 + r0, j0);
      // online softmax: one pass for the row max, one for exp and its sum (fused)
      for (int i = r0; i < r0 + nb; ++i) {
        float* row = s + static_cast<int64_t>(i - r0) * ld;
        const float m_new = cpu::max_floats(row, nk, m[i]);
        if (m_new == kNegInf) {  // nothing visible to this row yet
          std::fill(row, row + nk, 0.0f);
          continue;
        }
        const float rs = cpu::exp_shift_sum(row, nk, m_new);
        if (m_new != m[i]) {
          const float alpha = cpu::exp_approx(m[i] - m_new);  // 0 when m[i] = -inf
          l[i] *= alpha;
          float* orow = o + static_cast<int64_t>(i) * d;
          for (int c = 0; c < d; ++c) orow[c] *= alpha;
          m[i] = m_new;
        }
        l[i] += rs;
      }
      // O += P V
      gemm_nd(g, false, nb, d, nk, 1.0f, s, ld, v + koff, g.k_row, o + static_cast<int64_t>(r0) * d, d);
    }
  }

  for (int i = 0; i < nq; ++i) {
    float* dst = out + (static_cast<int64_t>(bi) * a.s_q + i0 + i) * g.q_row + static_cast<int64_t>(hh) * d;
    const float* orow = o + static_cast<int64_t>(i) * d;
    float row_lse = kNegInf;
    if (l[i] > 0.0f) {
      const float inv = 1.0f / l[i];
      for (int c = 0; c < d; ++c) dst[c] = orow[c] * inv;
      row_lse = m[i] + std::log(l[i]);
    } else {
      std::fill(dst, dst + d, 0.0f);
    }
    if (lse != nullptr) lse[(static_cast<int64_t>(bi) * a.h + hh) * a.s_q + i0 + i] = row_lse;
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

struct BwdScratch {
  std::vector<float> p, dp, kt, vt;
  void ensure(int d, bool with_kt) {
    ws::ensure_size(p, static_cast<size_t>(cpu::kAttnTileQMax) * cpu::kAttnTileKMax);
    ws::ensure_size(dp, static_cast<size_t>(cpu::kAttnTileQMax) * cpu::kAttnTileKMax);
    ws::ensure_size(kt, with_kt ? static_cast<size_t>(d) * kKeysTLd : 0);
    ws::ensure_size(vt, with_kt ? static_cast<size_t>(d) * kKeysTLd : 0);
  }
  size_t bytes() const { return sizeof(float) * (p.size() + dp.size() + kt.size() + vt.size()); }
};

// All query tiles of all query heads of kv head `kvh` against key tile kt. Writes dk/dv of
// that key tile (owned by this call) and adds into dq (dq_row: its token stride).
RT_CPU_CLONES
void backward_tile(const AttentionArgs& a, const Geom& g, const Mask& mask, const float* q, const float* k,
                   const float* v, const float* dout, const float* lse, const float* delta,
                   float* dq, float* dk, float* dv, int bi, int kvh, int kt, BwdScratch& w,
                   int64_t& scores) {
  const int d = a.d;
  const int kj0 = kt * g.tk, knk = std::min(g.tk, a.s_k - kj0);
  float* p = w.p.data();
  float* dp = w.dp.data();
  const int ld = g.tk;
  const int64_t tile_off = (static_cast<int64_t>(bi) * a.s_k + kj0) * g.k_row + static_cast<int64_t>(kvh) * d;
  keys_t(g, k + tile_off, g.k_row, knk, d, w.kt.data());
  keys_t(g, v + tile_off, g.k_row, knk, d, w.vt.data());

  for (int hh = kvh * g.group; hh < (kvh + 1) * g.group; ++hh) {
    for (int qt = 0; qt < g.nqt; ++qt) {
      const TileKind kind = classify(mask, bi, qt, kt);
      if (kind == TileKind::kSkip) continue;
      const int qi0 = qt * g.tq;
      TileBlocks blocks(mask, kind, bi, qi0, std::min(g.tq, a.s_q - qi0), kj0, knk);
      for (Block blk; blocks.next(blk);) {
        // queries i0 + [0, nq) against keys j0 + [0, nk)
        const int i0 = qi0 + blk.r0, nq = blk.r1 - blk.r0, j0 = kj0 + blk.c0, nk = blk.c1 - blk.c0;
        scores += static_cast<int64_t>(nq) * nk;
        const int64_t koff = (static_cast<int64_t>(bi) * a.s_k + j0) * g.k_row + static_cast<int64_t>(kvh) * d;
        const float* kp = k + koff;
        const float* vp = v + koff;
        float* dkp = dk + koff;
        float* dvp = dv + koff;
        const int64_t qoff = (static_cast<int64_t>(bi) * a.s_q + i0) * g.q_row + static_cast<int64_t>(hh) * d;
        const float* qp = q + qoff;
        const float* dop = dout + qoff;
        const float* lse_t = lse + (static_cast<int64_t>(bi) * a.h + hh) * a.s_q + i0;
        const float* delta_t = delta + (static_cast<int64_t>(bi) * a.h + hh) * a.s_q + i0;

        // P = exp(scale Q K^T - lse)
        score_tile(g, nq, nk, d, g.scale, qp, g.q_row, w.kt.data() + blk.c0, kp, g.k_row, p, ld);
        if (kind == TileKind::kMasked) apply_mask(mask, p, ld, nq, nk, bi, i0, j0);
        for (int i = 0; i < nq; ++i) {
          float* row = p + static_cast<int64_t>(i) * ld;
          if (lse_t[i] == kNegInf)  // the row sees no key at all: no probability, no gradient
            std::fill(row, row + nk, 0.0f);
          else
            cpu::exp_shift_inplace(row, nk, lse_t[i]);
        }
        // dV += P^T dO
        gemm_nd(g, true, nk, d, nq, 1.0f, p, ld, dop, g.q_row, dvp, g.k_row);
        // dP = dO V^T
        score_tile(g, nq, nk, d, 1.0f, dop, g.q_row, w.vt.data() + blk.c0, vp, g.k_row, dp, ld);
        // dS = P (dP - delta), in place of dP
        for (int i = 0; i < nq; ++i) {
          const float* prow = p + static_cast<int64_t>(i) * ld;
          float* drow = dp + static_cast<int64_t>(i) * ld;
          const float di = lse_t[i] == kNegInf ? 0.0f : delta_t[i];
          for (int j = 0; j < nk; ++j) drow[j] = prow[j] * (drow[j] - di);
        }
        // dQ += scale dS K;  dK += scale dS^T Q
        gemm_nd(g, false, nq, d, nk, g.scale, dp, ld, kp, g.k_row, dq + qoff, g.q_row);
        gemm_nd(g, true, nk, d, nq, g.scale, dp, ld, qp, g.q_row, dkp, g.k_row);
      }
    }
  }
}

}  // namespace

void attention_set_cpu_threads(int threads) {
  RT_CHECK(threads >= 1, "attention: threads must be >= 1, got ", threads);
  g_threads.store(threads);
}

int attention_cpu_threads() { return g_threads.load(); }

namespace cpu {
size_t attention_last_workspace_bytes() { return t_last_workspace; }
int64_t attention_last_scores_computed() { return t_last_scores; }
}  // namespace cpu

void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                       float* out, float* lse) {
  const Geom g = make_geom(a, false);
  CallBuffers& cb = call_buffers();
  const Mask mask = prepare_mask(a, g, cb);
  const int64_t items = static_cast<int64_t>(a.b) * a.h * g.nqt;
  const int nthreads = threads_for(items);
  cpu::BlasSingleThread blas_guard;
  std::atomic<size_t> scratch_bytes{0};
  std::atomic<int64_t> scores{0};
  cpu::WorkQueue queue(items);
  auto body = [&](int) {
    thread_local FwdScratch w;
    w.ensure(a.d, g.mk != nullptr);
    int64_t my_scores = 0;
    for (int64_t it; queue.next(it);) {
      const int qt = static_cast<int>(it % g.nqt);
      const int hh = static_cast<int>((it / g.nqt) % a.h);
      const int bi = static_cast<int>(it / (static_cast<int64_t>(g.nqt) * a.h));
      forward_tile(a, g, mask, q, k, v, out, lse, bi, hh, qt, w, my_scores);
    }
    scratch_bytes += w.bytes();
    scores += my_scores;
  };
  cpu::parallel_run(nthreads, body);
  t_last_workspace = scratch_bytes + range_bytes(cb);
  t_last_scores = scores;
}

void attention_backward_delta(const AttentionArgs& a, const float* out, const float* dout,
                              float* delta) {
  const int64_t q_row = static_cast<int64_t>(a.h) * a.d;
  for (int bi = 0; bi < a.b; ++bi)
    for (int i = 0; i < a.s_q; ++i)
      for (int hh = 0; hh < a.h; ++hh) {
        const int64_t off = (static_cast<int64_t>(bi) * a.s_q + i) * q_row + static_cast<int64_t>(hh) * a.d;
        double s = 0.0;
        for (int c = 0; c < a.d; ++c) s += static_cast<double>(out[off + c]) * dout[off + c];
        delta[(static_cast<int64_t>(bi) * a.h + hh) * a.s_q + i] = static_cast<float>(s);
      }
}

void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                        const float* dout, const float* lse, const float* delta, float* dq,
                        float* dk, float* dv) {
  const Geom g = make_geom(a, true);
  CallBuffers& cb = call_buffers();
  const Mask mask = prepare_mask(a, g, cb);
  const int64_t items = static_cast<int64_t>(a.b) * a.h_kv * g.nkt;
  const int nthreads = threads_for(items);
  cpu::BlasSingleThread blas_guard;
  // Several threads: each adds its dQ share into a private copy (key tiles of different work
  // items touch the same dQ rows), summed into dq at the end. Linear in s_q.
  const int64_t nq_elems = static_cast<int64_t>(a.b) * a.s_q * g.q_row;
  std::vector<float>& dq_part = cb.dq_part;
  ws::ensure_size(dq_part, nthreads > 1 ? static_cast<size_t>(nthreads) * nq_elems : 0, true);
  std::atomic<size_t> scratch_bytes{0};
  std::atomic<int64_t> scores{0};
  cpu::WorkQueue queue(items);
  auto body = [&](int tid) {
    thread_local BwdScratch w;
    w.ensure(a.d, g.mk != nullptr);
    float* my_dq = nthreads > 1 ? dq_part.data() + tid * nq_elems : dq;
    int64_t my_scores = 0;
    for (int64_t it; queue.next(it);) {
      const int kt = static_cast<int>(it % g.nkt);
      const int kvh = static_cast<int>((it / g.nkt) % a.h_kv);
      const int bi = static_cast<int>(it / (static_cast<int64_t>(g.nkt) * a.h_kv));
      backward_tile(a, g, mask, q, k, v, dout, lse, delta, my_dq, dk, dv, bi, kvh, kt, w, my_scores);
    }
    scratch_bytes += w.bytes();
    scores += my_scores;
  };
  cpu::parallel_run(nthreads, body);
  if (nthreads > 1) {
    for (int t = 0; t < nthreads; ++t) {
      const float* part = dq_part.data() + t * nq_elems;
      for (int64_t i = 0; i < nq_elems; ++i) dq[i] += part[i];
    }
  }
  t_last_workspace = scratch_bytes + sizeof(float) * dq_part.size() + range_bytes(cb);
  t_last_scores = scores;
}

void attention_merge(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                     const float* lse_b) {
  for (int bi = 0; bi < b; ++bi)
    for (int i = 0; i < s_q; ++i)
      for (int hh = 0; hh < h; ++hh) {
        const int64_t li = (static_cast<int64_t>(bi) * h + hh) * s_q + i;
        float* o = out + ((static_cast<int64_t>(bi) * s_q + i) * h + hh) * d;
        const float* ob = out_b + ((static_cast<int64_t>(bi) * s_q + i) * h + hh) * d;
        const float la = lse[li], lb = lse_b[li];
        if (lb == kNegInf) continue;  // the block saw nothing: (out, lse) unchanged
        if (la == kNegInf) {          // nothing so far: take the block as is
          std::memcpy(o, ob, sizeof(float) * static_cast<size_t>(d));
          lse[li] = lb;
          continue;
        }
        // With e = exp(min - max) <= 1: lse' = max + log1p(e), and the weights
        // exp(lse_x - lse') are 1 / (1 + e) for the larger lse and e / (1 + e) for the smaller.
        // Formed from e directly, not from the rounded lse' (at |lse| ~ 1e3 an ulp of lse'
        // would already be a 1e-4 relative error in the weights).
        const float e = std::exp(std::min(la, lb) - std::max(la, lb));
        const float w_hi = 1.0f / (1.0f + e), w_lo = e * w_hi;
        const float wa = la >= lb ? w_hi : w_lo, wb = la >= lb ? w_lo : w_hi;
        for (int c = 0; c < d; ++c) o[c] = o[c] * wa + ob[c] * wb;
        lse[li] = std::max(la, lb) + std::log1p(e);
      }
}

}  // namespace ringtrain
