#include "src/plan/memory.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <numeric>

#include "parallel/context_attention.h"

namespace ringtrain {

bool zero3_gathers_bf16(const Config& c, bool on_gpu) {
  return on_gpu && c.train.precision == TrainPrecision::kBf16 && c.parallel.zero_level() >= 3;
}

int64_t norm_elements(const Config& c) { return (2LL * c.model.n_layers + 1) * c.model.d_model; }

MemoryPlan plan_memory(const Config& c, bool on_gpu) {
  const ModelConfig& m = c.model;
  const ParallelConfig& p = c.parallel;
  const int64_t d = m.d_model, hd = m.head_dim(), L = m.n_layers, tp = p.tp, u = p.ulysses_degree;
  const int64_t h = m.n_heads / tp, kv = m.n_kv_heads / tp, ffn = m.ffn_dim() / tp, vocab = m.vocab_size / tp;
  MemoryPlan plan;

  // The parameter store of LlamaModel: embedding, per layer two norms and q/k/v/o (column and
  // row parallel) and gate/up/down, the final norm, the untied head.
  const int64_t per_layer_global = 2 * d + d * (m.n_heads + 2LL * m.n_kv_heads) * hd + m.n_heads * hd * d + 3 * d * m.ffn_dim();
  const int64_t per_layer_local = 2 * d + d * (h + 2 * kv) * hd + h * hd * d + 3 * d * ffn;
  const int64_t vocab_matrices = m.tie_embeddings ? 1 : 2;  // embedding, and the head unless tied
  plan.params_global = vocab_matrices * m.vocab_size * d + L * per_layer_global + d;
  plan.params_local = vocab_matrices * vocab * d + L * per_layer_local + d;
  // ZeRO pads each unit (the embedding, a layer, the final norm with the head) to split evenly
  // over the n = dp x cp ranks; a rank holds 1/n of each.
  const int zero = p.zero_level();
  const int64_t n = zero >= 1 ? static_cast<int64_t>(p.dp) * p.cp : 1;
  auto padded = [n](int64_t x) { return (x + n - 1) / n * n; };
  const int64_t embed_unit = padded(vocab * d), layer_unit = padded(per_layer_local);
  const int64_t head_unit = padded(d + (m.tie_embeddings ? 0 : vocab * d));
  plan.params_padded = embed_unit + L * layer_unit + head_unit;
  plan.embed_unit = embed_unit;
  plan.layer_unit = layer_unit;
  plan.head_unit = head_unit;
  const double shard = static_cast<double>(plan.params_padded) / n;
  // ZeRO-2/3's unit buffers: two rotating ones sized for the largest unit that takes turns in
  // them, and a tied embedding's own (the head writes its gradients first, reads it last).
  const bool tied = m.tie_embeddings;
  const double own = tied ? static_cast<double>(embed_unit) : 0.0;
  const double widest = static_cast<double>(std::max({layer_unit, head_unit, tied ? int64_t{0} : embed_unit}));
  const double slots = own + 2 * widest;
  // ZeRO-3 keeps this rank's pieces and gathers units into those (current and prefetched;
  // every layer's and the head's when they are kept for the backward).
  const double turns = p.zero3_keep_for_backward ? L + 1.0 : 2.0;
  const bool bf16 = on_gpu && c.train.precision == TrainPrecision::kBf16;
  const bool gather_bf16 = zero3_gathers_bf16(c, on_gpu);
  plan.weights = zero >= 3 ? 4.0 * shard : 4.0 * plan.params_padded;
  if (gather_bf16) plan.weights += 4.0 * static_cast<double>(norm_elements(c));  // whole on every rank
  // ZeRO-1: the reduce-scatter lands in a gradient shard beside the full buffer. ZeRO-2: no
  // full buffer, only the shard; the unit buffers each come with their reduced piece.
  plan.gradients = zero == 0 ? 4.0 * plan.params_padded
                   : zero == 1 ? 4.0 * plan.params_padded + 4.0 * shard
                               : 4.0 * shard;
  plan.moments = 8.0 * shard;
  // The CUDA backend keeps a bf16 copy per weight it multiplies by (not of ZeRO-3's units).
  if (bf16 && zero < 3) plan.bf16_weights = 2.0 * plan.params_local;
  if (zero >= 2) plan.zero_units = 4.0 * (slots + slots / n);
  if (gather_bf16) {
    // The embedding's fp32 buffer (and a tied one's bf16 copy for the head); the other units
    // in turns as bf16, each buffer with its bf16 piece to send.
    const double widest_bf16 = static_cast<double>(std::max(layer_unit, head_unit));
    plan.zero_units += 4.0 * embed_unit + (tied ? 2.0 * vocab * d : 0.0) + turns * 2.0 * (widest_bf16 + widest_bf16 / n);
  } else if (zero >= 3) {
    const double gathered = own + turns * widest;
    plan.zero_units += (bf16 ? 6.0 : 4.0) * gathered;  // and their bf16 copies on a GPU
  }

  // Token rows of one micro-batch on this rank: N through the linear layers, H held between
  // them (N / tp under sequence parallelism).
  const double N = static_cast<double>(c.train.micro_batch) * c.train.seq_len / p.cp;
  const double H = p.sequence_parallel && tp > 1 ? N / tp : N;
  // One layer's Acts: the norms' rstd (H each), the gathered norm outputs h1, h2 (N x d), q, k,
  // v, the attention output, x_mid, gate/up/SwiGLU, and the attention's lse (and, with Ulysses,
  // its output in the head-sharded frame).
  const double layer_acts = 2 * H + 2 * N * d + N * hd * (2.0 * h + 2.0 * kv) + H * d + 3 * N * ffn + N * h +
                            (u > 1 ? N * h * hd : 0.0);
  const double kept_layers = c.train.recompute ? 1.0 : static_cast<double>(L);
  // The layer inputs x_[0..L] stay under recompute too (each layer is recomputed from its
  // input); the head keeps the final norm (H x d, rstd), its gathered output and the logits.
  plan.activations = 4.0 * (layer_acts * kept_layers + H * d * (L + 1) + H * d + H + N * d + N * vocab);

  // Attention buffers, grown on the first step and kept. Ulysses sends K/V with the kv heads
  // each member reads duplicated when u does not divide the kv heads.
  if (p.cp > 1) {
    const int64_t kv_sent = u > 1 ? ulysses_kv_split(static_cast<int>(h), static_cast<int>(kv), static_cast<int>(u)).per_member * u : kv;
    const double q_elems = N * h * hd, sent = N * kv_sent * hd, lse = N * h;
    double f = 0;
    if (p.cp / u > 1)  // the ring travels: K|V double buffer, mine/acc_out/acc_in (dK|dV), block out/lse, delta
      f += 2 * 2 * sent + 3 * 2 * sent + q_elems + 2 * lse;
    if (u > 1) {
      f += 3 * q_elems + 4 * sent;                     // q, dout, dq frames; k, v, dk, dv frames
      if (kv_sent != kv) f += 4 * sent;                // gathered k, v and dk, dv before the sum
      f += 2 * std::max(q_elems, sent);                // the all-to-all's send and receive
    }
    plan.attention_buffers = 4.0 * f;
  }

  // LlamaModel::Work: tmp, full, embed (N x d); held, dnorm, dx (H x d); da, dg, du (N x ffn);
  // dao, dq (N x q width), dk, dv (N x kv width); recompute_out (H x d) under recompute.
  const double work = 3 * N * d + 3 * H * d + 3 * N * ffn + 2 * N * h * hd + 2 * N * kv * hd +
                      (c.train.recompute ? H * d : 0.0);
  plan.workspace = 4.0 * work;
  // bf16 operands of the widest GEMM input (MLP or head), 2 bytes per element.
  if (bf16) plan.workspace += 2.0 * N * std::max<double>(ffn, vocab);
  return plan;
}

int seq_len_step(const Config& c) {
  const int cp = c.parallel.cp, tp = c.parallel.tp;
  const int zigzag = 2 * cp, split = c.parallel.sequence_parallel && tp > 1 ? cp * tp : 1;
  return std::lcm(zigzag, split);
}

int max_seq_len(const Config& config, double capacity) {
  Config c = config;
  const int64_t step = seq_len_step(c);
  // Memory grows with the length in every term, so the lengths that fit are a prefix: double
  // until one does not (or seq_len would overflow), then bisect.
  auto fits = [&](int64_t units) {
    c.train.seq_len = static_cast<int>(units * step);
    return plan_memory(c, true).total() <= capacity;
  };
  const int64_t most = std::numeric_limits<int>::max() / step;
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = 2;
  while (hi <= most && fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  hi = std::min(hi, most + 1);  // lo fits, hi does not (or is beyond int)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return static_cast<int>(lo * step);
}

namespace {
const char* zero_note(int level) {
  static const char* const kNotes[] = {"", " (ZeRO-1 shard)", " (ZeRO-2 shard, gradients too)",
                                       " (ZeRO-3 shard, gradients and weights too)"};
  return kNotes[level];
}
}  // namespace

std::string describe_memory(const Config& c, const MemoryPlan& m) {
  const double mib = 1.0 / 1048576.0;
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "parameters: %lld global, %lld on each rank (tp shard)\n"
                "memory per rank (MiB):\n"
                "  weights (fp32)        %10.1f\n"
                "  gradients (fp32)      %10.1f\n"
                "  AdamW moments         %10.1f%s\n"
                "  bf16 weight copies    %10.1f\n"
                "  ZeRO unit buffers     %10.1f (working set: gathered weights, gradient units)\n"
                "  activations           %10.1f%s\n"
                "  attention buffers     %10.1f\n"
                "  workspace             %10.1f\n"
                "  total                 %10.1f\n",
                static_cast<long long>(m.params_global), static_cast<long long>(m.params_local), m.weights * mib,
                m.gradients * mib, m.moments * mib, zero_note(c.parallel.zero_level()),
                m.bf16_weights * mib, m.zero_units * mib, m.activations * mib, c.train.recompute ? " (recompute)" : "",
                m.attention_buffers * mib, m.workspace * mib, m.total() * mib);
  return buf;
}

}  // namespace ringtrain
