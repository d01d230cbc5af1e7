// ctest-ranks: 2 3 4 8
// Every layout trains the same model to the same numbers: the loss of each of 3 steps and
// the global weights after them equal a single rank's (computed in the same process on
// MPI_COMM_SELF), for (dp, cp, tp) layouts with and without sequence parallelism and ZeRO
// levels 0 to 3, ring/Ulysses/hybrid, GQA on. Catches gradients reduced over the wrong group,
// a missing conjugate all-reduce, norm gradients not summed under sequence parallelism, a ZeRO
// shard off by one, a data loader that hands replicas the wrong samples, a loss not averaged over
// the global batch.
#include <gtest/gtest.h>
#include <mpi.h>

#include <map>
#include <string>
#include <vector>

#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/process.h"
#include "src/train/trainer.h"
#include "layout_runs.h"

using namespace ringtrain;

namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 7, threads: 1}
model: {vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 8, n_kv_heads: 4, d_ff: 96}
train: {seq_len: 96, micro_batch: 2, grad_accum: 1, steps: 3, lr: 3.0e-3, warmup_steps: 1, grad_clip: 1.0, eval_batches: 1}
data: {task: passkey, passkey_digits: 3}
log: {every: 100, tensorboard: false}
)";

using test::expect_same;
using test::layout_name;
using test::TrainedRun;
TrainedRun train(MPI_Comm comm, const std::vector<std::string>& overrides) { return test::train(kBase, comm, overrides); }

}  // namespace

TEST(Layouts, EveryLayoutEqualsOneRank) {
  const int world = world_size();
  // The same global batch everywhere: dp * micro_batch * grad_accum = 4 samples.
  std::vector<std::vector<std::string>> layouts;
  auto add = [&](int dp, int cp, int tp, std::vector<std::string> extra) {
    if (dp * cp * tp != world) return;
    const int mb = dp >= 2 ? 1 : 2, accum = 4 / (dp * mb);
    std::vector<std::string> o = {"parallel.dp=" + std::to_string(dp), "parallel.cp=" + std::to_string(cp),
                                  "parallel.tp=" + std::to_string(tp), "train.micro_batch=" + std::to_string(mb),
                                  "train.grad_accum=" + std::to_string(accum)};
    o.insert(o.end(), extra.begin(), extra.end());
    layouts.push_back(o);
  };
  for (bool sp : {false, true})
    for (const char* z : {"0", "1", "2", "3"}) {
      std::vector<std::string> e = {std::string("parallel.sequence_parallel=") + (sp ? "true" : "false"),
                                    std::string("parallel.zero=") + z};
      add(1, 1, 2, e); add(2, 1, 1, e); add(1, 2, 1, e);
      add(1, 1, 4, e); add(1, 2, 2, e); add(2, 2, 1, e); add(2, 1, 2, e); add(1, 4, 1, e); add(4, 1, 1, e);
      add(2, 2, 2, e); add(1, 8, 1, e); add(1, 3, 1, e);
    }
  auto ul = [](std::string mode, int u) {
    return std::vector<std::string>{"parallel.cp_mode=" + mode, "parallel.ulysses_degree=" + std::to_string(u)};
  };
  add(1, 2, 1, ul("ulysses", 2));
  add(1, 4, 1, ul("ulysses", 4));
  add(1, 4, 1, ul("hybrid", 2));
  add(1, 2, 2, ul("ulysses", 2));
  add(1, 4, 1, {"parallel.zero1=true"});  // the older spelling of zero: 1
  add(2, 2, 2, ul("ulysses", 2));
  add(1, 8, 1, ul("hybrid", 4));
  ASSERT_FALSE(layouts.empty());

  const TrainedRun ref = train(MPI_COMM_SELF, {"train.micro_batch=2", "train.grad_accum=2"});
  for (const auto& o : layouts) {
    SCOPED_TRACE(layout_name(o));
    expect_same(train(MPI_COMM_WORLD, o), ref, layout_name(o));
  }
}

TEST(Layouts, AccumulationEqualsDataParallel) {
  if (world_size() != 2) return;  // (dp=1, mb=1, accum=2) == (dp=2, mb=1): registered at 2 ranks
  const TrainedRun accum = train(MPI_COMM_SELF, {"train.micro_batch=1", "train.grad_accum=2"});
  const TrainedRun dp = train(MPI_COMM_WORLD, {"parallel.dp=2", "train.micro_batch=1", "train.grad_accum=1"});
  expect_same(dp, accum, "dp=2 vs accumulation");
}

// The answer depends only on the first tokens (the key at depth 0) and is read at the last
// positions: with the loss on the answer alone, a layout that mixes up which rank holds which
// positions, or masks across chunks wrongly, changes the loss. (The losses are compared: with
// only 3 scored tokens per sample most gradients are near-cancelling sums, whose AdamW updates
// are sign-sensitive at the 1e-5 level whatever the layout; the weights are compared in the
// test above, on the full loss.)
TEST(Layouts, FirstTokensReadAtTheEnd) {
  const std::vector<std::string> task = {"data.passkey_min_depth=0", "data.passkey_max_depth=0", "data.loss=answer",
                                         "train.micro_batch=2", "train.grad_accum=1"};
  const TrainedRun ref = train(MPI_COMM_SELF, task);
  std::vector<std::string> o = task;
  o.push_back("parallel.cp=" + std::to_string(world_size()));
  expect_same(train(MPI_COMM_WORLD, o), ref, "cp=world, key at depth 0", false);
}

// Packed documents (several passkey prompts per sequence, each its own document: a document
// spanning several ranks and documents shorter than a zigzag chunk), with and without a
// sliding window, 2 kv heads: ring at cp = world, Ulysses at degree 4 (beyond the kv heads),
// hybrid 2 x 2, with tp = 2 and with dp = 2 equal one rank. Catches document ids sharded
// with the wrong layout, RoPE positions not restarting per document, a ring block skipped that
// a query sees, a loss normalised by the wrong count of scored tokens.
// AdamW's eps is 1e-6 here: packed prompts leave a few weight elements whose gradient is a
// near-cancelling sum (|g| ~ 1e-10), and with eps = 1e-8 Adam turns the layouts' different
// summation orders of such a g into updates of up to lr/100 (one o_proj element 4e-5 apart);
// with eps = 1e-6 an update is still linear in g there, so the weights compare gradients.
TEST(Layouts, PackedDocumentsEqualOneRank) {
  const int world = world_size();
  for (const char* window : {"0", "20"}) {
    const std::vector<std::string> packed = {"data.packing=documents", "model.n_kv_heads=2", "train.eps=1e-6",
                                             std::string("model.sliding_window=") + window};
    auto with = [&](std::vector<std::string> o) {
      o.insert(o.end(), packed.begin(), packed.end());
      return o;
    };
    std::vector<std::vector<std::string>> layouts;
    layouts.push_back(with({"parallel.cp=" + std::to_string(world), "train.micro_batch=2", "train.grad_accum=2"}));
    if (world == 4) {
      layouts.push_back(with({"parallel.cp=4", "parallel.cp_mode=ulysses", "train.micro_batch=2", "train.grad_accum=2"}));
      layouts.push_back(with({"parallel.cp=4", "parallel.cp_mode=hybrid", "parallel.ulysses_degree=2",
                              "train.micro_batch=2", "train.grad_accum=2"}));
      layouts.push_back(with({"parallel.cp=2", "parallel.tp=2", "train.micro_batch=2", "train.grad_accum=2"}));
      layouts.push_back(with({"parallel.dp=2", "parallel.cp=2", "train.micro_batch=1", "train.grad_accum=2"}));
    }
    const TrainedRun ref = train(MPI_COMM_SELF, with({"train.micro_batch=2", "train.grad_accum=2"}));
    for (const auto& o : layouts) {
      SCOPED_TRACE(layout_name(o));
      expect_same(train(MPI_COMM_WORLD, o), ref, layout_name(o));
    }
  }
}
