// ctest-ranks: 4 8 9
// ZeRO levels 1, 2 and 3 (sharding over dp x cp; 3 with and without the weights kept for the
// backward) train the same model to the same numbers as one rank: the loss of each of 3 steps and the global weights after them, at (dp, cp, tp) =
// (1, 4, 1), (2, 2, 2) and (1, 3, 3), with and without sequence parallelism, with gradient
// accumulation (ZeRO-2 reduces every micro-step). The model's units do not split evenly over
// 3 ranks (each is padded) and a parameter straddles two ranks' pieces. Catches a gradient
// reduced over the wrong group, a shard boundary off by one, a unit buffer reused before its
// reduce-scatter finished, a piece not gathered back after the update, a layer's weights
// gathered stale or into a buffer another layer still reads, a norm summed over the wrong
// ranks.
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "src/core/process.h"
#include "layout_runs.h"

using namespace ringtrain;

namespace {

// Heads, kv heads, the MLP width and the vocabulary divide by tp = 2 and 3.
constexpr const char* kBase = R"(
device: cpu
run: {seed: 11, threads: 1}
model: {vocab_size: 264, d_model: 96, n_layers: 2, n_heads: 6, n_kv_heads: 6, d_ff: 120}
train: {seq_len: 144, micro_batch: 2, grad_accum: 2, steps: 3, lr: 3.0e-3, warmup_steps: 1, grad_clip: 1.0, eval_batches: 1}
data: {task: passkey, passkey_digits: 3}
log: {every: 100, tensorboard: false}
)";

}  // namespace

TEST(Zero, LevelsEqualOneRank) {
  const int world = world_size();
  struct L {
    int dp, cp, tp;
  };
  std::vector<std::vector<std::string>> layouts;
  for (const L& l : {L{1, 4, 1}, L{2, 2, 2}, L{1, 3, 3}}) {
    if (l.dp * l.cp * l.tp != world) continue;
    // zero 3k: ZeRO-3 with each layer's weights kept from its forward to its backward.
    for (std::string zero : {"1", "2", "3", "3k"})
      for (const char* sp : {"false", "true"}) {
        if (l.tp == 1 && std::string(sp) == "true") continue;
        // The global batch of 4 samples: dp x micro_batch x grad_accum.
        layouts.push_back({"parallel.dp=" + std::to_string(l.dp), "parallel.cp=" + std::to_string(l.cp),
                           "parallel.tp=" + std::to_string(l.tp), "parallel.zero=" + zero.substr(0, 1),
                           std::string("parallel.zero3_keep_for_backward=") + (zero == "3k" ? "true" : "false"),
                           std::string("parallel.sequence_parallel=") + sp,
                           "train.micro_batch=" + std::to_string(2 / l.dp), "train.grad_accum=2"});
      }
  }
  ASSERT_FALSE(layouts.empty());
  const test::TrainedRun ref = test::train(kBase, MPI_COMM_SELF, {});
  for (const auto& o : layouts) {
    SCOPED_TRACE(test::layout_name(o));
    test::expect_same(test::train(kBase, MPI_COMM_WORLD, o), ref, test::layout_name(o));
  }
}

// A tied head writes the embedding's gradients first and reads its weights last, so ZeRO-2/3
// give the embedding buffers of its own there (untied, it takes turns with the other units).
// Catches the embedding's gradient buffer reused by a layer before its backward, or its
// gathered weights freed before the head reads them.
TEST(Zero, TiedEmbeddingsEqualOneRank) {
  const int world = world_size();
  const std::vector<std::string> tied = {"model.tie_embeddings=true", "train.micro_batch=2", "train.grad_accum=2"};
  const test::TrainedRun ref = test::train(kBase, MPI_COMM_SELF, tied);
  for (const char* zero : {"2", "3"}) {
    std::vector<std::string> o = tied;
    o.push_back("parallel.cp=" + std::to_string(world));
    o.push_back(std::string("parallel.zero=") + zero);
    SCOPED_TRACE(test::layout_name(o));
    test::expect_same(test::train(kBase, MPI_COMM_WORLD, o), ref, test::layout_name(o));
  }
}
