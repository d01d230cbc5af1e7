// ctest-ranks: 1 2
// A packed sample is its documents side by side, nothing more: the per-token losses of a
// sequence packing three documents equal, token by token, each document's losses when it is
// the whole sequence on its own, on one rank and split over cp = 2 (ring). The packed batch's
// loss is then the mean of the documents' losses weighted by their scored tokens. Catches
// attention leaking across a boundary, a sliding window measured across documents, a target
// predicted across a boundary. (RoPE restarting per document cannot show in any output:
// rotary scores depend on position differences only and a query sees only its own document;
// positions restart so that a document is computed exactly as transformers computes it alone.)
#include <gtest/gtest.h>
#include <mpi.h>

#include <numeric>
#include <string>
#include <vector>

#include "parallel/mesh.h"
#include "parallel/zigzag.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/core/rng.h"
#include "src/model/llama.h"
#include "src/train/compute.h"
#include "tolerance.h"

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 5, threads: 1}
model: {vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 96}
train: {seq_len: 96, micro_batch: 1}
data: {task: passkey, passkey_digits: 2}
log: {tensorboard: false}
)";

// Every token's loss (0 where ignored), in sequence order, for one whole sample of `tokens`
// (targets: the next token within its document, -1 at each document's last token).
std::vector<float> token_losses(LlamaModel& model, const Mesh& mesh, const std::vector<int32_t>& tokens,
                                const std::vector<int32_t>& docs) {
  const int s = static_cast<int>(tokens.size()), cp = mesh.shape().cp, r = mesh.coord().cp;
  const Zigzag zz{s, cp};
  LocalBatch batch;
  batch.b = 1;
  batch.seq_len = s;
  batch.s_local = zz.local_len();
  std::vector<int32_t> targets(tokens.size()), pos(tokens.size());
  for (int t = 0; t < s; ++t) {
    const bool last = t + 1 == s || docs[static_cast<size_t>(t + 1)] != docs[static_cast<size_t>(t)];
    targets[static_cast<size_t>(t)] = last ? -1 : tokens[static_cast<size_t>(t + 1)];
    pos[static_cast<size_t>(t)] = t > 0 && docs[static_cast<size_t>(t)] == docs[static_cast<size_t>(t - 1)]
                                      ? pos[static_cast<size_t>(t - 1)] + 1 : 0;
  }
  for (int t = 0; t < batch.s_local; ++t) {
    const size_t g = static_cast<size_t>(zz.position(r, t));
    batch.ids.push_back(tokens[g]);
    batch.targets.push_back(targets[g]);
    batch.answer.push_back(0);
    batch.rope_pos.push_back(pos[g]);
  }
  if (docs.back() != docs.front()) batch.docs = docs;
  std::vector<float> local;
  std::vector<int32_t> argmax;
  model.forward_eval(batch, &local, &argmax);
  std::vector<float> full(tokens.size(), 0.0f);
  for (int t = 0; t < batch.s_local; ++t) full[static_cast<size_t>(zz.position(r, t))] = local[static_cast<size_t>(t)];
  MPI_Allreduce(MPI_IN_PLACE, full.data(), s, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  return full;
}

void check(int window) {
  const int cp = world_size();
  SCOPED_TRACE(testing::Message() << "cp " << cp << " window " << window);
  const Config c = parse_config(kBase, "test_packed_loss",
                                {"parallel.cp=" + std::to_string(cp), "model.sliding_window=" + std::to_string(window)});
  Mesh mesh(MPI_COMM_WORLD, MeshShape{1, cp, 1, 1});
  Compute compute(c, mesh);
  LlamaModel model(c, mesh, compute.backend(), compute.groups());
  model.init_weights(c.run.seed);

  // Three documents (lengths divisible by 2 * cp, so each also runs alone).
  const std::vector<int> lengths = {20, 8, 68};
  std::vector<int32_t> tokens, docs;
  for (size_t d = 0; d < lengths.size(); ++d)
    for (int i = 0; i < lengths[d]; ++i) {
      tokens.push_back(static_cast<int32_t>(mix_bits(tokens.size() + 99) % 256));
      docs.push_back(static_cast<int32_t>(d));
    }
  const std::vector<float> packed = token_losses(model, mesh, tokens, docs);
  double packed_sum = 0, alone_sum = 0;
  int scored = 0, at = 0;
  for (int len : lengths) {
    const std::vector<int32_t> one(tokens.begin() + at, tokens.begin() + at + len);
    const std::vector<float> alone = token_losses(model, mesh, one, std::vector<int32_t>(one.size(), 0));
    EXPECT_EQ(test::compare(packed.data() + at, alone.data(), len, test::kF32Layout, "token losses"), "")
        << "document at " << at << " of length " << len;
    alone_sum += std::accumulate(alone.begin(), alone.end(), 0.0);
    scored += len - 1;
    at += len;
  }
  for (float x : packed) packed_sum += x;
  const double packed_mean = packed_sum / scored, weighted = alone_sum / scored;
  EXPECT_EQ(test::compare(&packed_mean, &weighted, 1, test::kF32Layout, "packed loss"), "");
}

}  // namespace

TEST(PackedLoss, DocumentsSideBySideEqualEachAlone) {
  check(0);
  check(5);
}
