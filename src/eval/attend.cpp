#include "src/eval/attend.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "parallel/mesh.h"
#include "parallel/zigzag.h"
#include "src/checkpoint/checkpoint.h"
#include "src/checkpoint/checkpoint_files.h"
#include "src/core/error.h"
#include "src/model/llama.h"
#include "src/train/compute.h"

namespace ringtrain {
namespace {

// The zigzag cuts a sequence into 2 * cp chunks of equal length.
int padded_length(int length, int cp) { return (length + 2 * cp - 1) / (2 * cp) * (2 * cp); }

void sum_to_root(Mesh& mesh, std::vector<float>& v) {
  if (v.empty()) return;
  MPI_Reduce(mesh.rank() == 0 ? MPI_IN_PLACE : v.data(), v.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_SUM, 0,
             mesh.world_comm());
}

}  // namespace

void check_attend_request(const Config& config, const AttendRequest& req) {
  const int n = static_cast<int>(req.tokens.size());
  RT_INPUT_CHECK(config.parallel.dp == 1, "attend runs one model replica: parallel.dp must be 1 (it is ",
                 config.parallel.dp, ")");
  RT_INPUT_CHECK(n > 0, "attend: the prompt is empty");
  RT_INPUT_CHECK(n <= config.train.seq_len, "attend: the prompt has ", n,
                 " tokens, more than the config's train.seq_len ", config.train.seq_len);
  for (int32_t t : req.tokens)
    RT_INPUT_CHECK(t >= 0 && t < config.model.vocab_size, "attend: token id ", t, " is outside the vocabulary [0, ",
                   config.model.vocab_size, ")");
  for (int l : req.layers)
    RT_INPUT_CHECK(l >= 0 && l < config.model.n_layers, "--layers: layer ", l, " is out of range (the model has ",
                   config.model.n_layers, " layers: 0..", config.model.n_layers - 1, ")");
  for (int32_t r : req.rows)
    RT_INPUT_CHECK(r >= 0 && r < n, "--rows: row ", r, " is out of range (the prompt has ", n, " tokens: 0..", n - 1,
                   ")");
  RT_INPUT_CHECK(req.pool >= 0, "--pool: ", req.pool, " must be positive");
  RT_INPUT_CHECK(req.pool == 0 || n % req.pool == 0, "--pool: ", req.pool, " does not divide the prompt length ", n,
                 " (prompts are not padded for pooling: choose a divisor, or trim the prompt to a multiple of ",
                 req.pool, ")");
  RT_INPUT_CHECK(req.docs.empty() || static_cast<int>(req.docs.size()) == n, "attend: ", req.docs.size(),
                 " document ids for ", n, " tokens");
  for (const KeySpan& s : req.spans)
    RT_INPUT_CHECK(s.lo >= 0 && s.lo < s.hi && s.hi <= n, "attend: key span '", s.name, "' [", s.lo, ", ", s.hi,
                   ") is not inside the prompt of ", n, " tokens");
}

AttendResult run_attend(const Config& config_in, Mesh& mesh, const AttendRequest& req) {
  using clock = std::chrono::steady_clock;
  check_attend_request(config_in, req);
  const int cp = mesh.shape().cp, length = static_cast<int>(req.tokens.size());
  const int seq = padded_length(length, cp);
  Config config = config_in;
  config.train.seq_len = seq;
  config.train.micro_batch = 1;
  config.train.precision = TrainPrecision::kFp32;  // maps are read in fp32, against an fp32 forward's lse
  config.train.recompute = false;
  config.parallel.zero = ZeroLevel::k0;  // no optimizer here to gather ZeRO-3's weights; any layout loads
  Compute compute(config, mesh);
  LlamaModel model(config, mesh, compute.backend(), compute.groups());
  model.init_weights(config.run.seed);
  if (!req.checkpoint.empty()) read_checkpoint_file(req.checkpoint, config, mesh, model.params(), nullptr);
  model.set_cross_rank(req.cross_rank);

  // The padded prompt, this rank's zigzag share.
  std::vector<int32_t> ids(req.tokens), docs(req.docs);
  ids.resize(static_cast<size_t>(seq), 0);
  if (!docs.empty()) docs.resize(static_cast<size_t>(seq), docs.back());  // padding joins the last document
  const Zigzag zz{seq, cp};
  LocalBatch batch;
  batch.b = 1;
  batch.s_local = zz.local_len();
  batch.seq_len = seq;
  batch.ids.resize(static_cast<size_t>(batch.s_local));
  batch.targets.assign(batch.ids.size(), -1);
  zz.shard(mesh.coord().cp, ids.data(), batch.ids.data());
  if (!docs.empty()) {
    // RoPE restarts in each document, as training on packed documents runs it.
    std::vector<int32_t> in_doc(static_cast<size_t>(seq));
    for (int t = 0; t < seq; ++t)
      in_doc[static_cast<size_t>(t)] = t == 0 || docs[static_cast<size_t>(t)] != docs[static_cast<size_t>(t - 1)]
                                           ? 0
                                           : in_doc[static_cast<size_t>(t - 1)] + 1;
    batch.rope_pos.resize(batch.ids.size());
    zz.shard(mesh.coord().cp, in_doc.data(), batch.rope_pos.data());
    batch.docs = docs;
  }

  AttendResult res;
  res.length = length;
  res.heads = config.model.n_heads;
  res.layers = req.layers;
  if (res.layers.empty())
    for (int l = 0; l < config.model.n_layers; ++l) res.layers.push_back(l);
  res.layout = "cp " + std::to_string(cp) + " (" + to_string(config.parallel.cp_mode) +
               (config.parallel.cp_mode == CpMode::kHybrid ? ", ulysses " + std::to_string(mesh.shape().ulysses) : "") +
               ") x tp " + std::to_string(mesh.shape().tp) + (req.cross_rank ? "" : ", no cross-rank attention");
  ProbsRequest pr;
  pr.seq_len = length;
  pr.rows = req.rows;
  pr.pool = req.pool;
  for (const KeySpan& s : req.spans) {
    pr.spans.push_back(s.lo);
    pr.spans.push_back(s.hi);
  }
  res.n_pool = req.pool > 0 ? length / req.pool : 0;
  res.width = kProbStats + static_cast<int>(req.spans.size());
  const size_t H = static_cast<size_t>(res.heads), R = req.rows.size(), L = static_cast<size_t>(length),
               P = static_cast<size_t>(res.n_pool), W = static_cast<size_t>(res.width);
  if (mesh.rank() == 0) {
    res.rows.assign(res.layers.size() * H * R * L, 0.0f);
    res.pooled.assign(res.layers.size() * H * P * P, 0.0f);
    res.stats.assign(res.layers.size() * H * L * W, 0.0f);
  }

  compute.backend().synchronize();
  auto t0 = clock::now();
  std::vector<float> unused_loss;
  std::vector<int32_t> unused_argmax;
  model.forward_eval(batch, &unused_loss, &unused_argmax);
  compute.backend().synchronize();
  res.forward_seconds = std::chrono::duration<double>(clock::now() - t0).count();

  Backend& be = compute.backend();
  be.reset_memory_peak();
  ContextProbs cprobs;
  std::vector<float> host_rows, host_pooled, host_stats, rows_g, pooled_g, stats_g;
  const int head_base = mesh.coord().tp * (res.heads / mesh.shape().tp);
  model.set_attention_hook([&](int layer, ContextAttention& ctx, const LocalAttentionShape& shape, const float* q,
                               const float* k, const ContextAttentionSaved& saved) {
    const auto it = std::find(res.layers.begin(), res.layers.end(), layer);
    if (it == res.layers.end()) return;
    const size_t li = static_cast<size_t>(it - res.layers.begin());
    context_attention_probs(ctx, shape, q, k, saved, pr, &cprobs);
    const size_t fh = static_cast<size_t>(cprobs.heads);
    host_rows.resize(fh * R * L);
    host_pooled.resize(fh * P * P);
    host_stats.resize(fh * L * W);
    if (R > 0) be.download(host_rows.data(), cprobs.rows.f32(), host_rows.size() * sizeof(float));
    if (P > 0) be.download(host_pooled.data(), cprobs.pooled.f32(), host_pooled.size() * sizeof(float));
    be.download(host_stats.data(), cprobs.stats.f32(), host_stats.size() * sizeof(float));
    // This rank's heads in the model's head order; the other heads stay zero here.
    rows_g.assign(H * R * L, 0.0f);
    pooled_g.assign(H * P * P, 0.0f);
    stats_g.assign(H * L * W, 0.0f);
    const size_t h0 = static_cast<size_t>(head_base + cprobs.head_offset);
    std::copy(host_rows.begin(), host_rows.end(), rows_g.begin() + static_cast<std::ptrdiff_t>(h0 * R * L));
    std::copy(host_pooled.begin(), host_pooled.end(), pooled_g.begin() + static_cast<std::ptrdiff_t>(h0 * P * P));
    std::copy(host_stats.begin(), host_stats.end(), stats_g.begin() + static_cast<std::ptrdiff_t>(h0 * L * W));
    sum_to_root(mesh, rows_g);
    sum_to_root(mesh, pooled_g);
    sum_to_root(mesh, stats_g);
    if (mesh.rank() != 0) return;
    std::copy(rows_g.begin(), rows_g.end(), res.rows.begin() + static_cast<std::ptrdiff_t>(li * H * R * L));
    std::copy(pooled_g.begin(), pooled_g.end(), res.pooled.begin() + static_cast<std::ptrdiff_t>(li * H * P * P));
    std::copy(stats_g.begin(), stats_g.end(), res.stats.begin() + static_cast<std::ptrdiff_t>(li * H * L * W));
  });
  t0 = clock::now();
  model.forward_eval(batch, &unused_loss, &unused_argmax);
  be.synchronize();
  res.attend_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  model.set_attention_hook(nullptr);
  unsigned long long peak = be.memory_peak();
  MPI_Allreduce(MPI_IN_PLACE, &peak, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, mesh.world_comm());
  res.peak_bytes = peak;
  return res;
}

}  // namespace ringtrain
