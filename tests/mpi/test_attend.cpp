// ctest-ranks: 1 2 3 4
// Attention maps (src/eval/attend.cpp, context_attention_probs) of a real model:
//  - exactness: at one rank, every row, pooled block and row statistic equals a dense
//    double-precision softmax(scale Q K^T) of the same model's q and k (captured with the
//    model's attention hook), causal, GQA 1 and 4, with and without packed documents and a
//    sliding window; catches a wrong lse, a mask that is not the forward's, RoPE positions
//    that differ between the forward and the read-back;
//  - layout independence: the same prompt and weights give the same rows, pooled maps and
//    statistics on every layout the world allows (ring cp = 2, 3, 4, Ulysses, hybrid, tp = 2,
//    cp x tp), with rows that straddle ranks and a prompt padded for the zigzag; catches a
//    ring step's columns at the wrong positions, Ulysses heads placed at the wrong global
//    head, tp shards overlapping, a block skipped or counted twice.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <string>
#include <vector>

#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/eval/attend.h"
#include "src/model/llama.h"
#include "src/train/compute.h"
#include "tolerance.h"

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 11, threads: 1}
model: {vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 8, n_kv_heads: 2, d_ff: 96, init_std: 0.2}
train: {seq_len: 96, micro_batch: 1}
data: {task: passkey, passkey_digits: 3}
log: {every: 100, tensorboard: false}
)";

constexpr int kLength = 90, kPool = 9;

Config make_config(std::vector<std::string> o, MPI_Comm comm) {
  int wr = world_rank(), n = 0;
  MPI_Comm_size(comm, &n);
  o.push_back("run.out_dir=/tmp/ringtrain-test-attend/" + std::to_string(n) + "-" + std::to_string(wr));
  return parse_config(kBase, "attend test", o);
}

MeshShape shape_of(const Config& c) {
  return MeshShape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree};
}

AttendRequest make_request(bool docs) {
  AttendRequest r;
  for (int t = 0; t < kLength; ++t) r.tokens.push_back((t * 37 + 11) % 256);
  if (docs)
    for (int t = 0; t < kLength; ++t) r.docs.push_back(t < 30 ? 0 : t < 61 ? 1 : 2);
  r.rows = {0, 29, 44, 45, 60, 89};  // chunk edges of the zigzags at cp 2..4 and the last token
  r.pool = kPool;
  r.spans = {{"sink", 0, 1}, {"middle", 40, 50}};
  return r;
}

AttendResult attend(MPI_Comm comm, const std::vector<std::string>& o, const AttendRequest& req) {
  const Config c = make_config(o, comm);
  Mesh mesh(comm, shape_of(c));
  return run_attend(c, mesh, req);
}

// The dense reference: the model's q, k of every layer at one rank, softmax in double.
struct Dense {
  std::vector<double> p;    // [layers][heads][length][length]
  std::vector<double> lse;  // [layers][heads][length]: log of each row's softmax denominator
};
Dense dense_reference(const std::vector<std::string>& o, const AttendRequest& req) {
  Config c = make_config(o, MPI_COMM_SELF);
  c.train.seq_len = kLength + 6 - kLength % 6;  // any padded length: rows see no padding
  Mesh mesh(MPI_COMM_SELF, shape_of(c));
  Compute compute(c, mesh);
  LlamaModel model(c, mesh, compute.backend(), compute.groups());
  model.init_weights(c.run.seed);
  const ModelShape& ms = model.shape();
  const int L = kLength, S = c.train.seq_len, H = ms.heads, G = ms.heads / ms.kv_heads, D = ms.head_dim;
  const int window = c.model.sliding_window;
  Dense out;
  out.p.assign(static_cast<size_t>(ms.layers) * H * L * L, 0.0);
  out.lse.assign(static_cast<size_t>(ms.layers) * H * L, 0.0);
  model.set_attention_hook([&](int layer, ContextAttention&, const LocalAttentionShape&, const float* qd,
                               const float* kd, const ContextAttentionSaved&) {
    std::vector<float> q(static_cast<size_t>(S) * H * D), k(static_cast<size_t>(S) * ms.kv_heads * D);
    compute.backend().download(q.data(), qd, q.size() * sizeof(float));
    compute.backend().download(k.data(), kd, k.size() * sizeof(float));
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < L; ++i) {
        std::vector<double> s(static_cast<size_t>(L), -INFINITY);
        double mx = -INFINITY;
        for (int j = 0; j <= i; ++j) {
          if (!req.docs.empty() && req.docs[static_cast<size_t>(i)] != req.docs[static_cast<size_t>(j)]) continue;
          if (window > 0 && i - j >= window) continue;
          double dot = 0.0;
          for (int e = 0; e < D; ++e)
            dot += static_cast<double>(q[(static_cast<size_t>(i) * H + h) * D + e]) *
                   k[(static_cast<size_t>(j) * ms.kv_heads + h / G) * D + e];
          s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double z = 0.0;
        for (double x : s) z += std::isinf(x) ? 0.0 : std::exp(x - mx);
        out.lse[(static_cast<size_t>(layer) * H + h) * L + i] = mx + std::log(z);
        for (int j = 0; j < L; ++j)
          if (!std::isinf(s[static_cast<size_t>(j)]))
            out.p[((static_cast<size_t>(layer) * H + h) * L + i) * L + j] = std::exp(s[static_cast<size_t>(j)] - mx) / z;
      }
  });
  // The zigzag at cp = 1 is the identity: token t is row t.
  LocalBatch batch;
  batch.b = 1;
  batch.s_local = S;
  batch.ids = req.tokens;
  batch.ids.resize(static_cast<size_t>(S), 0);
  batch.targets.assign(static_cast<size_t>(S), -1);
  if (!req.docs.empty()) {
    batch.docs = req.docs;
    batch.docs.resize(static_cast<size_t>(S), req.docs.back());
    for (int t = 0; t < S; ++t)
      batch.rope_pos.push_back(t == 0 || batch.docs[static_cast<size_t>(t)] != batch.docs[static_cast<size_t>(t - 1)]
                                   ? 0
                                   : batch.rope_pos.back() + 1);
  }
  std::vector<float> loss;
  std::vector<int32_t> argmax;
  model.forward_eval(batch, &loss, &argmax);
  return out;
}

void expect_matches_dense(const AttendResult& r, const Dense& ref, const AttendRequest& req) {
  const size_t L = kLength, H = static_cast<size_t>(r.heads), R = req.rows.size(), P = static_cast<size_t>(r.n_pool),
               W = static_cast<size_t>(r.width);
  std::vector<double> rows(r.rows.size()), pooled(r.pooled.size(), 0.0), stats(r.stats.size(), 0.0);
  for (size_t li = 0; li < r.layers.size(); ++li)
    for (size_t h = 0; h < H; ++h) {
      const double* p = &ref.p[((static_cast<size_t>(r.layers[li]) * H + h) * L) * L];
      for (size_t ri = 0; ri < R; ++ri)
        for (size_t j = 0; j < L; ++j) rows[((li * H + h) * R + ri) * L + j] = p[static_cast<size_t>(req.rows[ri]) * L + j];
      for (size_t i = 0; i < L; ++i) {
        double* st = &stats[((li * H + h) * L + i) * W];
        for (size_t j = 0; j < L; ++j) {
          const double x = p[i * L + j];
          pooled[((li * H + h) * P + i / kPool) * P + j / kPool] += x;
          if (x > 0) st[0] -= x * std::log(x);
          st[1] += x * (static_cast<double>(i) - static_cast<double>(j));
          for (size_t m = 0; m < req.spans.size(); ++m)
            if (static_cast<int>(j) >= req.spans[m].lo && static_cast<int>(j) < req.spans[m].hi) st[kProbStats + m] += x;
        }
      }
    }
  EXPECT_EQ(test::compare(r.rows.data(), rows.data(), static_cast<int64_t>(rows.size()), test::kF32, "rows"), "");
  EXPECT_EQ(test::compare(r.pooled.data(), pooled.data(), static_cast<int64_t>(pooled.size()), test::kF32, "pooled"), "");
  EXPECT_EQ(test::compare(r.stats.data(), stats.data(), static_cast<int64_t>(stats.size()), test::kF32, "stats"), "");
}

// Two layouts' attention statistics. The entropy is computed as sum p (lse - s) = lse - sum p s:
// a layout that sums the row's lse in another order moves it by up to kF32Layout of |lse|, and
// the entropy by the same absolute amount, however small the entropy itself (a near one-hot row
// has entropy ~0 and lse ~ its largest score). So the entropy column's bound adds
// kF32Layout.rtol * |lse| (lse from the double reference) to the table's; the other columns are
// sums of probabilities and take the table's bound as it is.
void expect_same(const AttendResult& got, const AttendResult& ref, const Dense& dense, const std::string& what) {
  ASSERT_EQ(got.rows.size(), ref.rows.size()) << what;
  ASSERT_EQ(got.pooled.size(), ref.pooled.size()) << what;
  ASSERT_EQ(got.stats.size(), ref.stats.size()) << what;
  EXPECT_EQ(test::compare(got.rows.data(), ref.rows.data(), static_cast<int64_t>(ref.rows.size()), test::kF32Layout, "rows"), "") << what;
  EXPECT_EQ(test::compare(got.pooled.data(), ref.pooled.data(), static_cast<int64_t>(ref.pooled.size()), test::kF32Layout, "pooled"), "") << what;
  const size_t W = static_cast<size_t>(ref.width), rows = ref.stats.size() / W, L = kLength;
  ASSERT_EQ(rows, ref.layers.size() * static_cast<size_t>(ref.heads) * L) << what;
  std::vector<float> got_rest, ref_rest;
  for (size_t r = 0; r < rows; ++r) {
    const size_t li = r / (static_cast<size_t>(ref.heads) * L), rest = r % (static_cast<size_t>(ref.heads) * L);
    const double lse = dense.lse[static_cast<size_t>(ref.layers[li]) * ref.heads * L + rest];
    const double g = got.stats[r * W], e = ref.stats[r * W];
    const double bound = test::kF32Layout.atol + test::kF32Layout.rtol * (std::fabs(e) + std::fabs(lse));
    EXPECT_LE(std::fabs(g - e), bound) << what << ": entropy of stats row " << r << " (lse " << lse << ")";
    got_rest.insert(got_rest.end(), got.stats.begin() + static_cast<std::ptrdiff_t>(r * W + 1),
                    got.stats.begin() + static_cast<std::ptrdiff_t>((r + 1) * W));
    ref_rest.insert(ref_rest.end(), ref.stats.begin() + static_cast<std::ptrdiff_t>(r * W + 1),
                    ref.stats.begin() + static_cast<std::ptrdiff_t>((r + 1) * W));
  }
  EXPECT_EQ(test::compare(got_rest.data(), ref_rest.data(), static_cast<int64_t>(ref_rest.size()), test::kF32Layout,
                          "stats (distance, spans)"),
            "")
      << what;
}

struct Variant {
  std::vector<std::string> model;
  bool docs;
};

std::vector<Variant> variants() {
  return {{{"model.n_kv_heads=8"}, false},
          {{"model.n_kv_heads=2"}, false},
          {{"model.n_kv_heads=2"}, true},
          {{"model.n_kv_heads=8", "model.sliding_window=24"}, true}};
}

}  // namespace

TEST(Attend, OneRankEqualsDenseDoubleSoftmax) {
  for (const Variant& v : variants()) {
    std::string name;
    for (const auto& s : v.model) name += s + " ";
    SCOPED_TRACE(name + (v.docs ? "documents" : "one document"));
    const AttendRequest req = make_request(v.docs);
    const AttendResult r = attend(MPI_COMM_SELF, v.model, req);
    expect_matches_dense(r, dense_reference(v.model, req), req);
    // Every full pooled row of blocks sums to the pool size.
    for (size_t row = 0; row < r.pooled.size() / static_cast<size_t>(r.n_pool); ++row) {
      double sum = 0.0;
      for (int j = 0; j < r.n_pool; ++j) sum += r.pooled[row * static_cast<size_t>(r.n_pool) + static_cast<size_t>(j)];
      EXPECT_NEAR(sum, kPool, test::kF32.atol * kPool + test::kF32.rtol * kPool) << "pooled row " << row;
    }
  }
}

TEST(Attend, EveryLayoutEqualsOneRank) {
  const int world = world_size();
  std::vector<std::vector<std::string>> layouts;
  auto add = [&](int cp, int tp, const std::string& mode, int u) {
    if (cp * tp != world) return;
    layouts.push_back({"parallel.cp=" + std::to_string(cp), "parallel.tp=" + std::to_string(tp),
                       "parallel.cp_mode=" + mode, "parallel.ulysses_degree=" + std::to_string(u)});
  };
  add(1, 1, "ring", 1);
  add(2, 1, "ring", 1);
  add(3, 1, "ring", 1);
  add(4, 1, "ring", 1);
  add(1, 2, "ring", 1);
  add(2, 1, "ulysses", 2);
  add(4, 1, "ulysses", 4);
  add(4, 1, "hybrid", 2);
  add(2, 2, "ring", 1);
  add(2, 2, "ulysses", 2);
  for (const Variant& v : variants()) {
    const AttendRequest req = make_request(v.docs);
    const AttendResult ref = attend(MPI_COMM_SELF, v.model, req);
    const Dense dense = dense_reference(v.model, req);
    for (auto o : layouts) {
      o.insert(o.end(), v.model.begin(), v.model.end());
      std::string name;
      for (const auto& s : o) name += s + " ";
      name += v.docs ? "documents" : "one document";
      SCOPED_TRACE(name);
      const AttendResult got = attend(MPI_COMM_WORLD, o, req);
      if (world_rank() == 0) expect_same(got, ref, dense, name);
    }
  }
}
