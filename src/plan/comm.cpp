#include "src/plan/comm.h"

#include "parallel/context_attention.h"
#include "src/plan/memory.h"

namespace ringtrain {

std::map<std::string, double> plan_comm_bytes(const Config& c, bool on_gpu) {
  const ModelConfig& m = c.model;
  const ParallelConfig& p = c.parallel;
  const double d = m.d_model, hd = m.head_dim(), L = m.n_layers, k = c.train.grad_accum;
  const int tp = p.tp, u = p.ulysses_degree, ring = p.cp / p.ulysses_degree;
  const int h = m.n_heads / tp, kv = m.n_kv_heads / tp;
  const double N = static_cast<double>(c.train.micro_batch) * c.train.seq_len / p.cp;
  const bool sp = p.sequence_parallel && tp > 1, recompute = c.train.recompute;
  std::map<std::string, double> bytes;

  if (tp > 1) {
    const double passes = (sp ? 8 * L + 4 : 4 * L + 2) + (recompute ? (sp ? 4 : 2) * L : 0);
    const double per_micro = passes * N * d + 3 * N;
    const double norm_reductions = p.zero_level() >= 2 ? k : 1;  // ZeRO-2 reduces every micro-step
    bytes["tp"] = 4 * (k * per_micro + (sp ? norm_reductions * (2 * L + 1) * d : 0)) + 8;
  }
  const double kv_sent = u > 1 ? ulysses_kv_split(h, kv, u).per_member * u : kv;
  const double sent = N * kv_sent * hd, q = N * h * hd;
  if (ring > 1) {
    const double hops = (3.0 * ring - 2) + (recompute ? ring - 1 : 0);
    bytes["cp_ring"] = 4 * k * L * hops * 2 * sent;
  }
  if (u > 1) {
    const double forward = 2 * q + 2 * sent, backward = 3 * q + 4 * sent;
    bytes["cp_ulysses"] = 4 * k * L * (forward * (recompute ? 2 : 1) + backward);
  }
  const MemoryPlan params = plan_memory(c, false);
  const int zero = p.zero_level();
  if (p.dp * p.cp > 1) bytes["dp_cp"] = 16 + (zero == 0 ? 4.0 * params.params_local : 0.0);
  if (zero >= 1) {  // reduce-scatters (every micro-step from ZeRO-2 on), the norm sums
    bytes["dp_cp"] += 4.0 * params.params_padded * (zero >= 2 ? k : 1) + 16;
  }
  if (zero == 1 || zero == 2) bytes["dp_cp"] += 4.0 * params.params_padded;  // the all-gather after the update
  if (zero >= 3) {
    // Per micro-batch every unit is gathered for the forward and again for the backward (the
    // head and a tied embedding stay, the untied embedding's backward reads no weights; kept
    // layers are not gathered again). In bf16 (on a GPU) all but the embedding at 2 bytes,
    // and once per step the RMSNorm weights are summed whole.
    const bool half = zero3_gathers_bf16(c, on_gpu);
    const double unit_bytes = half ? 2.0 : 4.0;
    const double layers = L * static_cast<double>(params.layer_unit) * (p.zero3_keep_for_backward ? 1.0 : 2.0);
    bytes["dp_cp"] += k * (4.0 * params.embed_unit + unit_bytes * (layers + params.head_unit));
    if (half) bytes["dp_cp"] += 4.0 * static_cast<double>(norm_elements(c));
  }
  return bytes;
}

}  // namespace ringtrain
