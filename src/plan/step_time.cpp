#include "src/plan/step_time.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "parallel/context_attention.h"
#include "src/plan/memory.h"
#include "src/plan/unit_pipeline.h"

namespace ringtrain {
namespace {

// The link a group of `span` consecutive ranks (its first and last member's distance + 1)
// crosses: the node's when every such group sits inside one node.
struct Link {
  double bytes_per_s, latency_s;
};

Link link_for(int span, const GpuKind& kind, const Cluster& cluster) {
  const bool intra = span <= cluster.gpus_per_node && cluster.gpus_per_node % span == 0;
  return {1e9 * (intra ? kind.intra_gbps : kind.inter_gbps), 1e-6 * kind.latency_us};
}

// Collectives over n members as the step issues them, `bytes` the payload comm.h counts.
double all_reduce_s(double bytes, int n, const Link& l) {
  return n <= 1 ? 0.0 : 2.0 * (n - 1) * l.latency_s + 2.0 * (n - 1) / n * bytes / l.bytes_per_s;
}
double scatter_or_gather_s(double bytes, int n, const Link& l) {  // reduce-scatter, all-gather, all-to-all
  return n <= 1 ? 0.0 : (n - 1) * l.latency_s + static_cast<double>(n - 1) / n * bytes / l.bytes_per_s;
}
double hop_s(double bytes, const Link& l) { return l.latency_s + bytes / l.bytes_per_s; }

}  // namespace

StepTime plan_step_time(const Config& c, const GpuKind& kind, const Cluster& cluster) {
  const ModelConfig& m = c.model;
  const ParallelConfig& p = c.parallel;
  const double d = m.d_model, hd = m.head_dim(), L = m.n_layers, k = c.train.grad_accum;
  const double s = c.train.seq_len, mb = c.train.micro_batch;
  const int tp = p.tp, u = p.ulysses_degree, cp = p.cp, ring = cp / u, dp = p.dp, world = dp * cp * tp;
  const int h = m.n_heads / tp, kv = m.n_kv_heads / tp;
  const double ffn = m.ffn_dim() / tp, vocab = m.vocab_size / tp;
  const double N = mb * s / cp;  // token rows of one micro-batch on this rank
  const bool sp = p.sequence_parallel && tp > 1, recompute = c.train.recompute;
  const double gemm_rate = 1e12 * kind.gemm_tflops, fwd_rate = 1e12 * kind.attn_fwd_tflops,
               bwd_rate = 1e12 * kind.attn_bwd_tflops;
  StepTime t;

  // Compute of one micro-batch, per layer and for the head (forward 2 FLOPs per weight and
  // row, backward 4; causal attention forward 2 b s^2 h d over the cp x tp ranks, backward
  // 2.5x). Recompute runs each layer's forward again inside its backward.
  const double linear = d * (h + 2.0 * kv) * hd + h * hd * d + 3.0 * d * ffn;
  const double gemm_fwd = 2 * N * linear / gemm_rate, gemm_bwd = 2 * gemm_fwd;
  const double attn_flops = 2.0 * mb * s * s * m.n_heads * hd / (static_cast<double>(cp) * tp);
  const double attn_fwd = attn_flops / fwd_rate, attn_bwd = 2.5 * attn_flops / bwd_rate;
  const double head_fwd = 2 * N * d * vocab / gemm_rate, head_bwd = 2 * head_fwd;

  // Tensor parallelism: the Megatron collectives of N x d rows (fp32) of one layer, forward
  // and backward, each an all-reduce or (sequence parallel) a reduce-scatter and an all-gather.
  const Link tp_link = link_for(tp, kind, cluster);
  const double tp_pass = sp ? 2 * scatter_or_gather_s(4 * N * d, tp, tp_link) : all_reduce_s(4 * N * d, tp, tp_link);
  const double tp_layer_fwd = 2 * tp_pass, tp_layer_bwd = 2 * tp_pass;
  // The embedding's and the head input's, and the vocab-parallel loss's max and (sum-exp, target).
  const double tp_head = 2 * tp_pass + all_reduce_s(4 * N, tp, tp_link) + all_reduce_s(8 * N, tp, tp_link);

  // Context parallelism: Ulysses all-to-alls, then the ring's hops over its r members.
  const double kv_sent = u > 1 ? ulysses_kv_split(h, kv, u).per_member * u : kv;
  const double sent = 4 * N * kv_sent * hd, q = 4 * N * h * hd;  // bytes of K (or V) and of Q
  double uly_fwd = 0, uly_bwd = 0;
  if (u > 1) {
    const Link l = link_for(u * tp, kind, cluster);
    uly_fwd = 2 * scatter_or_gather_s(q, u, l) + 2 * scatter_or_gather_s(sent, u, l);
    uly_bwd = 3 * scatter_or_gather_s(q, u, l) + 4 * scatter_or_gather_s(sent, u, l);
  }
  double ring_fwd = 0, ring_fwd_exposed = 0, ring_bwd = 0, ring_bwd_exposed = 0;
  if (ring > 1) {
    const Link l = link_for(cp * tp, kind, cluster);
    const double kv_hop = hop_s(2 * sent, l), both_hop = l.latency_s + 4 * sent / l.bytes_per_s;
    ring_fwd = (ring - 1) * kv_hop;
    const double hide_fwd = kind.async_progress ? attn_fwd / ring : 0.0;
    const double hide_bwd = kind.async_progress ? attn_bwd / ring : 0.0;
    ring_fwd_exposed = (ring - 1) * std::max(0.0, kv_hop - hide_fwd);
    ring_bwd = (ring - 1) * both_hop + kv_hop;
    ring_bwd_exposed = (ring - 1) * std::max(0.0, both_hop - hide_bwd) + kv_hop;
  }

  const double layer_fwd = gemm_fwd + attn_fwd + tp_layer_fwd + uly_fwd + ring_fwd_exposed;
  const double layer_bwd = gemm_bwd + attn_bwd + tp_layer_bwd + uly_bwd + ring_bwd_exposed + (recompute ? layer_fwd : 0.0);
  const double micro_fwd = L * layer_fwd + head_fwd + tp_head / 2;
  const double micro_bwd = L * layer_bwd + head_bwd + tp_head / 2;

  const double fwd_passes = recompute ? 2.0 : 1.0;
  t.gemm = k * (L * (fwd_passes * gemm_fwd + gemm_bwd) + head_fwd + head_bwd);
  t.attention_forward = k * L * fwd_passes * attn_fwd;
  t.attention_backward = k * L * attn_bwd;
  t.tp = k * (L * (tp_layer_fwd * fwd_passes + tp_layer_bwd) + tp_head);
  t.ulysses = k * L * (uly_fwd * fwd_passes + uly_bwd);
  t.ring = k * L * (ring_fwd * fwd_passes + ring_bwd);
  t.ring_exposed = k * L * (ring_fwd_exposed * fwd_passes + ring_bwd_exposed);

  // The gradient all-reduce, bucket by bucket behind the last micro-batch's backward: the head
  // (and final norm), each layer from the last, the embedding.
  // Under ZeRO (over dp x cp) each bucket is a reduce-scatter instead, at every micro-batch from
  // level 2 on (the earlier micro-batches' hide behind the next one's compute).
  const MemoryPlan params = plan_memory(c, false);
  const int zero = p.zero_level();
  const int sync_n = dp * cp;
  if (sync_n > 1) {
    const Link l = link_for(world, kind, cluster);
    const double layer_params = 2 * d + linear, embed_params = vocab * d;
    const double head_params = static_cast<double>(params.params_local) - L * layer_params - embed_params;
    double ready = head_bwd + tp_head / 2, channel = 0;
    auto bucket = [&](double elems, double at) {
      const double dur = zero >= 1 ? scatter_or_gather_s(4 * elems, sync_n, l) : all_reduce_s(4 * elems, sync_n, l);
      channel = std::max(channel, at) + dur;
      t.grad_sync += dur;
    };
    bucket(head_params, ready);
    for (int i = 0; i < m.n_layers; ++i) bucket(layer_params, ready += layer_bwd);
    bucket(embed_params, micro_bwd);
    t.grad_sync_exposed = kind.async_progress ? std::max(0.0, channel - micro_bwd) : t.grad_sync;
  }
  if (zero >= 2) t.grad_sync *= k;
  if (zero >= 1 && zero <= 2) {  // the updated weights all-gathered after the step (exposed)
    t.zero = scatter_or_gather_s(4.0 * params.params_padded, sync_n, link_for(world, kind, cluster));
  } else if (zero >= 3) {
    // Each unit gathered before its forward (and each layer again before its backward unless
    // kept), prefetched behind the one unit before it, and every unit's gradients
    // reduce-scattered on the same channel at every micro-batch (unit_pipeline.h). What the
    // passes take beyond their compute is exposed; the part the reduce-scatters alone would
    // cost is the gradient sync's, the rest the gathers'.
    const Link l = link_for(world, kind, cluster);
    // fp32 gradients; weights in fp32, or (bf16 on a GPU) all but the embedding's in bf16.
    const bool half = zero3_gathers_bf16(c, !kind.host());
    auto moved = [&](int64_t elems, double bytes) {
      return scatter_or_gather_s(bytes * static_cast<double>(elems), sync_n, l);
    };
    const double wb = half ? 2.0 : 4.0;
    const double layer_gather = moved(params.layer_unit, wb), layer_reduce = moved(params.layer_unit, 4.0);
    const bool keep = p.zero3_keep_for_backward;
    std::vector<UnitWork> fwd, bwd, bwd_reduce_only;
    fwd.push_back({moved(params.embed_unit, 4.0), 0.0, 0.0});
    for (int i = 0; i < m.n_layers; ++i) fwd.push_back({layer_gather, layer_fwd, 0.0});
    fwd.push_back({moved(params.head_unit, wb), head_fwd + tp_head / 2, 0.0});
    bwd.push_back({0.0, head_bwd + tp_head / 2, moved(params.head_unit, 4.0)});  // held from the forward
    for (int i = 0; i < m.n_layers; ++i) bwd.push_back({keep ? 0.0 : layer_gather, layer_bwd, layer_reduce});
    bwd.push_back({0.0, 0.0, moved(params.embed_unit, 4.0)});  // tied: held; untied: its backward reads no weights
    for (UnitWork w : bwd) bwd_reduce_only.push_back({0.0, w.compute_s, w.reduce_s});
    const bool async = kind.async_progress;
    const double reduce_exposed = unit_pass_s(bwd_reduce_only, async) - micro_bwd;
    const double passes = unit_pass_s(fwd, async) + unit_pass_s(bwd, async) - micro_fwd - micro_bwd;
    t.grad_sync_exposed = k * reduce_exposed;
    t.zero = std::max(0.0, k * passes - t.grad_sync_exposed);
    if (half) t.zero += all_reduce_s(4.0 * static_cast<double>(norm_elements(c)), sync_n, l);  // blocking
  }
  // The step's small all-reduces, all blocking: the token count and the loss over dp x cp, the
  // gradient norm over tp (and dp x cp under ZeRO), and under sequence parallelism each norm
  // weight's gradient over tp (2 L + 1 of d floats, as the backward reaches them).
  t.scalars = 2 * all_reduce_s(8, dp * cp, link_for(world, kind, cluster)) + all_reduce_s(8, tp, tp_link) +
              (zero >= 1 ? all_reduce_s(16, dp * cp, link_for(world, kind, cluster)) : 0.0) +
              (sp ? (2 * L + 1) * all_reduce_s(4 * d, tp, tp_link) : 0.0);

  t.step = k * (micro_fwd + micro_bwd) + t.grad_sync_exposed + t.zero + t.scalars;
  t.tokens_per_s = dp * mb * s * k / t.step;
  t.tokens_per_s_per_gpu = t.tokens_per_s / world;
  const double matmul = L * (d * (m.n_heads + 2.0 * m.n_kv_heads) * hd + m.n_heads * hd * d + 3.0 * d * m.ffn_dim()) +
                        static_cast<double>(m.vocab_size) * d;
  t.model_flops_per_token = 6 * matmul + 6 * L * s * m.n_heads * hd;
  t.mfu = t.model_flops_per_token * t.tokens_per_s / (world * 1e12 * kind.peak_tflops);
  return t;
}

std::string describe_step_time(const StepTime& t, const GpuKind& kind, const Cluster& cluster) {
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "step time (%s: GEMM %g, attention %g / %g TFLOP/s; links %g GB/s in a node of %d, %g GB/s "
                "between nodes, %g us a message):\n"
                "  GEMM                  %10.4f s\n"
                "  attention fwd / bwd   %10.4f s / %.4f s\n"
                "  tp collectives        %10.4f s\n"
                "  Ulysses all-to-all    %10.4f s\n"
                "  ring hops             %10.4f s, %.4f s not hidden by attention\n"
                "  gradient all-reduce   %10.4f s, %.4f s not hidden by the backward\n"
                "  ZeRO weight gathers   %10.4f s\n"
                "  loss, count, norms    %10.4f s\n"
                "  step                  %10.4f s: %.0f tokens/s, %.0f per GPU, MFU %.1f%% of %g TFLOP/s\n",
                kind.name.c_str(), kind.gemm_tflops, kind.attn_fwd_tflops, kind.attn_bwd_tflops, kind.intra_gbps,
                cluster.gpus_per_node, kind.inter_gbps, kind.latency_us, t.gemm, t.attention_forward,
                t.attention_backward, t.tp, t.ulysses, t.ring, t.ring_exposed, t.grad_sync, t.grad_sync_exposed, t.zero,
                t.scalars, t.step, t.tokens_per_s, t.tokens_per_s_per_gpu, 100 * t.mfu, kind.peak_tflops);
  return buf;
}

}  // namespace ringtrain
