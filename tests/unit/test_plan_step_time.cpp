// The step-time model (src/plan/step_time.h) on hand-countable cases: the GEMM and attention
// FLOPs of a config against the formulas written out here, the overlap rules (a ring hop hides
// behind one block's attention and no more, the home hop never; the gradient all-reduce hides
// behind the backward; nothing hides on a kind without asynchronous progress), the link a group
// crosses (a tp group wider than a node pays the network), tokens/s and MFU from the step.
// Catches an overlap charged where the step has none, a FLOP term dropped or doubled, a group
// put on the wrong link, a ZeRO-3 gather hidden behind more than the one unit it moves
// beside (or the pass's first gather hidden at all), a per-message latency paid once for all.
#include <gtest/gtest.h>

#include "src/config/config.h"
#include "src/plan/gpu_kinds.h"
#include "src/plan/step_time.h"
#include "src/plan/memory.h"
#include "src/plan/unit_pipeline.h"

namespace ringtrain {
namespace {

constexpr const char* kBase = R"(
device: cpu
run: {seed: 1, threads: 1, out_dir: /tmp/ringtrain-test-plan-step-time}
model: {vocab_size: 1024, d_model: 256, n_layers: 4, n_heads: 8, n_kv_heads: 4, d_ff: 768}
train: {seq_len: 4096, micro_batch: 2, grad_accum: 3, steps: 1, warmup_steps: 0}
data: {task: passkey}
)";

Config config(const std::vector<std::string>& overrides) { return parse_config(kBase, "test_plan_step_time", overrides); }

// A kind with round numbers: 1 TFLOP/s GEMM, 0.5 / 0.25 attention, 100 / 10 GB/s, 5 us.
GpuKind kind(bool async) {
  GpuKind k = gpu_kind("h100");
  k.peak_tflops = 2;
  k.gemm_tflops = 1;
  k.attn_fwd_tflops = 0.5;
  k.attn_bwd_tflops = 0.25;
  k.intra_gbps = 100;
  k.inter_gbps = 10;
  k.latency_us = 5;
  k.async_progress = async;
  return k;
}

TEST(PlanStepTime, ComputeIsTheFlopCountOverTheRates) {
  const Config c = config({"parallel.tp=2", "parallel.cp=2", "parallel.dp=2"});
  const StepTime t = plan_step_time(c, kind(true), Cluster{});
  // Per rank and micro-batch: N = 2 * 4096 / 2 token rows; the tp shard's linear weights per
  // layer (q, k, v, o, gate, up, down) and the head's vocab / tp columns; 6 FLOPs a weight and row.
  const double N = 2.0 * 4096 / 2, d = 256, hd = 32, h = 4, kv = 2, ffn = 384, vocab = 512;
  const double linear = d * (h + 2 * kv) * hd + h * hd * d + 3 * d * ffn;
  const double gemm = 3 * (4 * 6 * N * linear + 6 * N * d * vocab);
  EXPECT_NEAR(t.gemm, gemm / 1e12, 1e-12);
  // Causal attention, all 8 heads of a 4096-token sequence, 2 of them, over cp x tp = 4 ranks.
  const double attn = 3 * 4 * 2.0 * 2 * 4096.0 * 4096 * 8 * hd / 4;
  EXPECT_NEAR(t.attention_forward, attn / 0.5e12, 1e-12);
  EXPECT_NEAR(t.attention_backward, 2.5 * attn / 0.25e12, 1e-12);
  // Recompute runs every layer's forward twice.
  const StepTime r = plan_step_time(config({"parallel.tp=2", "parallel.cp=2", "parallel.dp=2", "train.recompute=true"}),
                                    kind(true), Cluster{});
  EXPECT_NEAR(r.gemm - t.gemm, 3 * 4 * 2 * N * linear / 1e12, 1e-12);
  EXPECT_NEAR(r.attention_forward, 2 * t.attention_forward, 1e-12);
}

TEST(PlanStepTime, RingHopsHideBehindOneBlockEachAndTheHomeHopNever) {
  const Config c = config({"parallel.cp=4"});
  const StepTime fast = plan_step_time(c, kind(true), Cluster{});
  // K|V of one rank (N = 2048 rows x 4 kv heads x 32, fp32, twice) at 100 GB/s is far shorter
  // than a block's attention: only the backward's last hop home stays, once per layer and
  // micro-batch.
  const double kv_bytes = 2 * 4.0 * 2048 * 4 * 32;
  EXPECT_NEAR(fast.ring_exposed, 3 * 4 * (5e-6 + kv_bytes / 100e9), 1e-12);
  EXPECT_GT(fast.ring, fast.ring_exposed);
  // Without asynchronous progress every hop is on the critical path, and so is the gradient sync.
  const StepTime host = plan_step_time(c, kind(false), Cluster{});
  EXPECT_DOUBLE_EQ(host.ring_exposed, host.ring);
  EXPECT_DOUBLE_EQ(host.grad_sync_exposed, host.grad_sync);
  EXPECT_GT(host.step, fast.step);
}

TEST(PlanStepTime, GradientAllReduceHidesBehindTheBackward) {
  const Config c = config({"parallel.dp=4"});
  const StepTime t = plan_step_time(c, kind(true), Cluster{});
  EXPECT_GT(t.grad_sync, 0);
  // Only the embedding's bucket, issued when the backward ends, is left over at these sizes.
  EXPECT_LT(t.grad_sync_exposed, 0.5 * t.grad_sync);
  EXPECT_DOUBLE_EQ(t.tp + t.ulysses + t.ring + t.zero, 0);
  EXPECT_GT(t.scalars, 0);  // the loss and token count over dp
  EXPECT_NEAR(t.step, t.compute() + t.grad_sync_exposed + t.scalars, 1e-9 * t.step);
}

TEST(PlanStepTime, AGroupWiderThanANodePaysTheNetwork) {
  const Config c = config({"parallel.tp=8", "model.n_kv_heads=8"});
  const StepTime in_node = plan_step_time(c, kind(true), Cluster{8});
  const StepTime across = plan_step_time(c, kind(true), Cluster{4});
  EXPECT_GT(in_node.tp, 0);
  // The same bytes and messages at a tenth of the bandwidth: more time, less than 10x (latency).
  EXPECT_GT(across.tp, 5 * in_node.tp);
  EXPECT_LT(across.tp, 10 * in_node.tp);
}

TEST(PlanStepTime, TokensPerSecondAndMfuFollowTheStep) {
  const Config c = config({"parallel.dp=2", "parallel.cp=2"});
  const StepTime t = plan_step_time(c, kind(true), Cluster{});
  EXPECT_NEAR(t.tokens_per_s * t.step, 2.0 * 2 * 3 * 4096, 1e-6);
  EXPECT_NEAR(t.tokens_per_s_per_gpu * 4, t.tokens_per_s, 1e-9 * t.tokens_per_s);
  // The trainer's count: 6 FLOPs per matrix weight (4 layers and the head) and 6 L s h d.
  const double matmul = 4 * (256.0 * (8 + 2 * 4) * 32 + 8 * 32 * 256 + 3 * 256 * 768) + 1024.0 * 256;
  EXPECT_NEAR(t.model_flops_per_token, 6 * matmul + 6 * 4 * 4096.0 * 8 * 32, 1e-3);
  EXPECT_NEAR(t.mfu, t.model_flops_per_token * t.tokens_per_s / (4 * 2e12), 1e-12);
}


TEST(PlanStepTime, AUnitGatherHidesBehindTheOneUnitBeforeItOnly) {
  // Gathers shorter than the units: only the first (nothing computes while it moves) and the
  // one behind the zero-compute first unit are exposed.
  EXPECT_DOUBLE_EQ(unit_pass_s({{1, 0, 0}, {1, 5, 0}, {1, 5, 0}}, true), 12.0);
  // Gathers longer than the units: each unit waits for its gather; compute 3, pass 10.
  EXPECT_DOUBLE_EQ(unit_pass_s({{3, 1, 0}, {3, 1, 0}, {3, 1, 0}}, true), 10.0);
  // A reduce-scatter queued on the channel before a later prefetch delays it, and the pass
  // ends when the channel is empty: unit 0 (2 s) reduces for 3 s from t = 2; unit 1's gather
  // went first (t = 0..1), unit 1 computes 2..4, the channel drains at 5.
  EXPECT_DOUBLE_EQ(unit_pass_s({{0, 2, 3}, {1, 2, 0}}, true), 5.0);
  EXPECT_DOUBLE_EQ(unit_pass_s({{0, 2, 0}, {4, 2, 0}, {4, 2, 0}}, true), 10.0);
  // Without asynchronous progress nothing hides.
  EXPECT_DOUBLE_EQ(unit_pass_s({{1, 0, 0}, {1, 5, 2}, {1, 5, 0}}, false), 15.0);
}

TEST(PlanStepTime, ZeroThreeExposesItsFirstGatherAndEveryMessagesLatency) {
  const Config c = config({"parallel.dp=4", "parallel.zero=3"});
  const MemoryPlan mp = plan_memory(c, false);
  const double lat = 5e-6, bw = 100e9;  // dp 4 in one node
  auto gather = [&](double elems) { return 3 * lat + 0.75 * 4 * elems / bw; };
  // On the host every gather (embedding, layers twice, head) and reduce-scatter is on the
  // critical path, each with its own three start-ups, for each of the 3 micro-batches.
  const StepTime host = plan_step_time(c, kind(false), Cluster{});
  const double gathers = gather(mp.embed_unit) + 2 * 4 * gather(mp.layer_unit) + gather(mp.head_unit);
  EXPECT_NEAR(host.zero, 3 * gathers, 1e-12);
  // With progress the first gather (the embedding's) and the first layer's (behind the
  // embedding lookup, which computes nothing here) are still exposed at every micro-batch.
  const StepTime t = plan_step_time(c, kind(true), Cluster{});
  EXPECT_GE(t.zero, 3 * (gather(mp.embed_unit) + gather(mp.layer_unit)) - 1e-12);
  EXPECT_LT(t.zero, host.zero);
  // Kept for the backward: no second gather of the layers, no more exposed than without.
  const StepTime keep =
      plan_step_time(config({"parallel.dp=4", "parallel.zero=3", "parallel.zero3_keep_for_backward=true"}), kind(true),
                     Cluster{});
  EXPECT_LE(keep.zero, t.zero);
  EXPECT_NEAR(t.step, t.compute() + t.exposed_comm(), 1e-9 * t.step);
  // In bf16 on a GPU all but the embedding travel at 2 bytes an element, and the RMSNorm
  // weights ((2 L + 1) d floats) are summed once per step.
  const Config b = config({"parallel.dp=4", "parallel.zero=3", "train.precision=bf16"});
  auto gather_at = [&](double elems, double bytes) { return 3 * lat + 0.75 * bytes * elems / bw; };
  const double half = gather_at(mp.embed_unit, 4) + 2 * 4 * gather_at(mp.layer_unit, 2) + gather_at(mp.head_unit, 2);
  const double norms = 2 * 3 * lat + 2 * 0.75 * 4 * (2 * 4 + 1) * 256 / bw;
  EXPECT_NEAR(plan_step_time(b, kind(false), Cluster{}).zero, 3 * half + norms, 1e-12);
}

}  // namespace
}  // namespace ringtrain
