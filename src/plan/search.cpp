#include "src/plan/search.h"

#include <algorithm>
#include <cstdio>

#include "src/core/error.h"

namespace ringtrain {
namespace {

std::vector<int> divisors(int64_t n) {
  std::vector<int> out;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0) out.push_back(static_cast<int>(i));
  return out;
}

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

}  // namespace

std::string layout_name(const Config& c) {
  const ParallelConfig& p = c.parallel;
  std::string mode;
  if (p.cp > 1) mode = p.cp_mode == CpMode::kHybrid ? " (hybrid, ulysses " + std::to_string(p.ulysses_degree) + ")"
                                                    : " (" + to_string(p.cp_mode) + ")";
  return "dp " + std::to_string(p.dp) + " x cp " + std::to_string(p.cp) + mode + " x tp " + std::to_string(p.tp) +
         (p.sequence_parallel ? ", sp" : "") + (p.zero1 ? ", zero1" : "") + (c.train.recompute ? ", recompute" : "") +
         ", micro_batch " + std::to_string(c.train.micro_batch) + " x grad_accum " + std::to_string(c.train.grad_accum);
}

LayoutSearch search_layouts(const Config& config, int gpus, const GpuKind& kind, const Cluster& cluster,
                            double capacity) {
  LayoutSearch out;
  const ParallelConfig& own = config.parallel;
  const int64_t own_dp = gpus % (own.cp * own.tp) == 0 ? gpus / (own.cp * own.tp) : own.dp;
  out.sequences_per_step = own_dp * config.train.micro_batch * config.train.grad_accum;
  const std::string base = dump_config(config);
  const bool on_gpu = !kind.host();

  for (int tp : divisors(gpus))
    for (int cp : divisors(gpus / tp)) {
      const int dp = gpus / (tp * cp);
      if (out.sequences_per_step % dp != 0) continue;
      // (cp_mode, ulysses_degree): ring alone at cp 1; ring, ulysses and every hybrid split above.
      std::vector<std::pair<std::string, int>> modes = {{"ring", 1}};
      if (cp > 1) {
        modes.push_back({"ulysses", cp});
        for (int u : divisors(cp))
          if (u > 1 && u < cp) modes.push_back({"hybrid", u});
      }
      for (const auto& [mode, u] : modes)
        for (bool sp : {false, true}) {
          if (sp && tp == 1) continue;
          Config shape;
          try {
            // The config's own checks decide what is a layout (one set of rules, not a copy).
            shape = parse_config(base, config.source,
                                 {"parallel.dp=" + std::to_string(dp), "parallel.cp=" + std::to_string(cp),
                                  "parallel.tp=" + std::to_string(tp), "parallel.cp_mode=" + mode,
                                  "parallel.ulysses_degree=" + std::to_string(u),
                                  std::string("parallel.sequence_parallel=") + (sp ? "true" : "false")},
                                 ConfigChecks{.paths = false});
          } catch (const Error&) {
            continue;
          }
          for (bool zero1 : {false, true}) {
            if (zero1 && dp == 1) continue;
            for (bool recompute : {false, true})
              for (int mb : divisors(out.sequences_per_step / dp)) {
                PlannedLayout l{shape, {}, {}};
                l.config.parallel.zero1 = zero1;
                l.config.train.recompute = recompute;
                l.config.train.micro_batch = mb;
                l.config.train.grad_accum = static_cast<int>(out.sequences_per_step / dp / mb);
                l.memory = plan_memory(l.config, on_gpu);
                ++out.valid;
                if (out.valid == 1 || l.memory.total() < out.smallest.memory.total()) out.smallest = l;
                if (capacity > 0 && l.memory.total() > capacity) continue;
                l.time = plan_step_time(l.config, kind, cluster);
                out.fits.push_back(std::move(l));
              }
          }
        }
    }

  RT_INPUT_CHECK(out.valid > 0, "no layout of ", gpus, " GPUs is valid for this model at train.seq_len ",
                 config.train.seq_len, ": tp must divide the heads (", config.model.n_heads, "), kv heads (",
                 config.model.n_kv_heads, "), vocabulary and MLP, 2 x cp the sequence length, dp the ",
                 out.sequences_per_step, " sequences per step");
  RT_INPUT_CHECK(!out.fits.empty(), "nothing fits on ", gpus, " ", kind.name, kind.host() ? " ranks" : " GPUs", " of ",
                 gib(capacity),
                 ": the smallest memory per rank of the ", out.valid, " layouts is ", gib(out.smallest.memory.total()),
                 " (", layout_name(out.smallest.config), "); it would need ", gib(out.smallest.memory.total()),
                 " per GPU, or a shorter train.seq_len or more GPUs");
  std::stable_sort(out.fits.begin(), out.fits.end(), [](const PlannedLayout& a, const PlannedLayout& b) {
    // Equal speed (sequence parallelism moves the same bytes): the smaller memory first.
    if (a.time.tokens_per_s != b.time.tokens_per_s) return a.time.tokens_per_s > b.time.tokens_per_s;
    return a.memory.total() < b.memory.total();
  });
  return out;
}

}  // namespace ringtrain
