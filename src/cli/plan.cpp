#include "src/cli/plan.h"

#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "src/core/error.h"
#include "src/core/process.h"
#include "src/plan/comm.h"
#include "src/plan/memory.h"
#include "src/plan/search.h"

namespace ringtrain {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return text;
}

std::string gib_text(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", bytes / kGiB);
  return text;
}

PlanTarget target_from(const CommandLine& cl) {
  PlanTarget t = plan_target(gpu_kind(cl.gpu));
  GpuKind& k = t.kind;
  auto set = [](double& field, double value) {
    if (value > 0) field = value;
  };
  set(k.intra_gbps, cl.intra_bw);
  set(k.inter_gbps, cl.inter_bw);
  set(k.latency_us, cl.latency_us);
  set(k.gemm_tflops, cl.gemm_tflops);
  set(k.attn_fwd_tflops, cl.attn_fwd_tflops);
  set(k.attn_bwd_tflops, cl.attn_bwd_tflops);
  if (cl.memory_gib > 0) t.capacity = cl.memory_gib * kGiB;
  t.cluster.gpus_per_node = cl.gpus_per_node;
  return t;
}

}  // namespace

PlanTarget plan_target(const GpuKind& kind) {
  PlanTarget t;
  t.kind = kind;
  t.capacity = kind.memory_bytes;
  return t;
}

Config config_for_gpus(const Config& config, int gpus) {
  Config c = config;
  const long long cp_tp = 1LL * c.parallel.cp * c.parallel.tp;
  RT_INPUT_CHECK(gpus % cp_tp == 0, "--gpus ", gpus, ": parallel.cp x tp = ", c.parallel.cp, " x ", c.parallel.tp,
                 " = ", cp_tp, " does not divide it (dp = gpus / (cp*tp) must be whole)");
  c.parallel.dp = static_cast<int>(gpus / cp_tp);
  return c;
}

std::string plan_text(const Config& c, const PlanTarget& target) {
  const ParallelConfig& p = c.parallel;
  const GpuKind& kind = target.kind;
  const MemoryPlan m = plan_memory(c, !kind.host());
  char head[1024];
  std::snprintf(head, sizeof head,
                "layout: %d ranks = dp %d x cp %d x tp %d (cp_mode %s, ulysses_degree %d), sequence_parallel %s, "
                "zero %d\nstep: micro_batch %d x seq_len %d x grad_accum %d, recompute %s, precision %s, on %s\n",
                p.dp * p.cp * p.tp, p.dp, p.cp, p.tp, to_string(p.cp_mode).c_str(), p.ulysses_degree,
                p.sequence_parallel ? "on" : "off", p.zero_level(), c.train.micro_batch, c.train.seq_len, c.train.grad_accum,
                c.train.recompute ? "on" : "off",
                kind.host() ? "fp32" : to_string(c.train.precision).c_str(), kind.name.c_str());
  std::string text = head + describe_memory(c, m);
  char fit[256];
  if (target.capacity <= 0)
    std::snprintf(fit, sizeof fit, "fits: host memory (the CPU backend has no device limit)\n");
  else
    std::snprintf(fit, sizeof fit, "fits: %s, %.1f GiB of the %s's %.1f GiB (%.0f%%; %s)\n",
                  m.total() <= target.capacity ? "yes" : "NO", m.total() / kGiB, kind.name.c_str(),
                  target.capacity / kGiB, 100.0 * m.total() / target.capacity,
                  target.capacity == kind.memory_bytes ? kind.source.c_str() : "--memory-gib");
  text += fit;
  const std::map<std::string, double> comm = plan_comm_bytes(c, !kind.host());
  text += "bytes sent per rank and step, by group (the payload handed to the communicator):\n";
  if (comm.empty()) text += "  none (one rank)\n";
  for (const auto& [group, bytes] : comm) {
    text += "  " + group + std::string(13 - group.size(), ' ') + human_bytes(bytes) + "\n";
  }
  text += describe_step_time(plan_step_time(c, kind, target.cluster), kind, target.cluster);
  return text;
}

namespace {

// The plan at the longest seq_len that fits `kind`, after a line saying what one step more needs.
std::string max_context_text(Config c, const PlanTarget& target) {
  const GpuKind& kind = target.kind;
  RT_INPUT_CHECK(!kind.host(), "--max-context needs a GPU kind (--gpu ", kind.name,
                 " plans the CPU backend, which has no device memory limit)");
  const int step = seq_len_step(c);
  const int longest = max_seq_len(c, target.capacity);
  if (longest == 0) {
    c.train.seq_len = step;
    const MemoryPlan m = plan_memory(c, true);
    input_error("the model does not fit on the ", kind.name, " at any length: at seq_len ", step, " a rank needs ",
                gib_text(m.total()), " of its ", gib_text(target.capacity), " (weights, gradients and moments ",
                gib_text(m.weights + m.gradients + m.moments + m.bf16_weights),
                "); a larger parallel.tp, or ZeRO-1 over more dp, shrinks them");
  }
  c.train.seq_len = longest;
  Config next = c;
  next.train.seq_len = longest + step;
  return "max context: seq_len " + std::to_string(longest) + " (multiples of " + std::to_string(step) + " tried); " +
         std::to_string(longest + step) + " would need " + gib_text(plan_memory(next, true).total()) + "\n" +
         plan_text(c, target);
}

std::string search_table(const LayoutSearch& s, const Config& c, int gpus, const PlanTarget& target, int top) {
  const GpuKind& kind = target.kind;
  std::ostringstream o;
  char line[512];
  std::snprintf(line, sizeof line,
                "search: %zu of %d layouts of %d %s %s fit %s per rank; seq_len %d, %lld sequences per step; "
                "ranked by predicted tokens/s (%s)\n",
                s.fits.size(), s.valid, gpus, kind.name.c_str(), kind.host() ? "ranks" : "GPUs",
                target.capacity > 0 ? gib_text(target.capacity).c_str() : "host memory", c.train.seq_len,
                static_cast<long long>(s.sequences_per_step), kind.rates_source.c_str());
  o << line;
  o << "| # | dp | cp | cp_mode | tp | sp | zero | recompute | micro x accum | GiB/rank | step s | tokens/s | "
       "tokens/s/GPU | MFU | exposed comm s |\n"
       "|---:|---:|---:|---|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (size_t i = 0; i < s.fits.size() && static_cast<int>(i) < top; ++i) {
    const PlannedLayout& l = s.fits[i];
    const ParallelConfig& p = l.config.parallel;
    const std::string mode = p.cp == 1 ? "-"
                             : p.cp_mode == CpMode::kHybrid ? "hybrid u" + std::to_string(p.ulysses_degree)
                                                           : to_string(p.cp_mode);
    std::snprintf(line, sizeof line, "| %zu | %d | %d | %s | %d | %s | %d | %s | %d x %d | %.2f | %.4g | %.4g | %.4g | %.1f%% | %.3g |\n",
                  i + 1, p.dp, p.cp, mode.c_str(), p.tp, p.sequence_parallel ? "yes" : "no", p.zero_level(),
                  l.config.train.recompute ? "yes" : "no", l.config.train.micro_batch, l.config.train.grad_accum,
                  l.memory.total() / kGiB, l.time.step, l.time.tokens_per_s, l.time.tokens_per_s_per_gpu,
                  100 * l.time.mfu, l.time.exposed_comm());
    o << line;
  }
  if (static_cast<int>(s.fits.size()) > top) o << "(" << s.fits.size() - top << " more: --top N, or --json for all)\n";
  return o.str();
}

std::string search_json(const LayoutSearch& s, const Config& c, int gpus, const PlanTarget& target) {
  std::ostringstream o;
  o.precision(9);
  o << "{\"gpus\": " << gpus << ", \"gpu\": \"" << target.kind.name << "\", \"seq_len\": " << c.train.seq_len
    << ", \"sequences_per_step\": " << s.sequences_per_step << ", \"capacity_bytes\": " << target.capacity
    << ", \"valid\": " << s.valid << ", \"fits\": [";
  for (size_t i = 0; i < s.fits.size(); ++i) {
    const PlannedLayout& l = s.fits[i];
    const ParallelConfig& p = l.config.parallel;
    const StepTime& t = l.time;
    o << (i ? ",\n  " : "\n  ") << "{\"dp\": " << p.dp << ", \"cp\": " << p.cp << ", \"tp\": " << p.tp
      << ", \"cp_mode\": \"" << to_string(p.cp_mode) << "\", \"ulysses_degree\": " << p.ulysses_degree
      << ", \"sequence_parallel\": " << (p.sequence_parallel ? "true" : "false")
      << ", \"zero\": " << p.zero_level() << ", \"recompute\": " << (l.config.train.recompute ? "true" : "false")
      << ", \"micro_batch\": " << l.config.train.micro_batch << ", \"grad_accum\": " << l.config.train.grad_accum
      << ", \"memory_bytes\": " << l.memory.total() << ", \"step_s\": " << t.step << ", \"compute_s\": " << t.compute()
      << ", \"exposed_comm_s\": " << t.exposed_comm() << ", \"tokens_per_s\": " << t.tokens_per_s
      << ", \"tokens_per_s_per_gpu\": " << t.tokens_per_s_per_gpu << ", \"mfu\": " << t.mfu << "}";
  }
  o << "\n]}\n";
  return o.str();
}

}  // namespace

int run_plan(const CommandLine& cl) {
  // Under mpirun every rank plans the same thing (its errors are collective); rank 0 prints.
  const std::string text = collectively([&] {
    // A plan is made for another machine: the token files and checkpoints need not be here.
    const Config loaded = load_config(cl.config_path, cl.overrides, ConfigChecks{.paths = false});
    const PlanTarget target = target_from(cl);
    RT_INPUT_CHECK(!(cl.search && cl.max_context), "--search and --max-context: pick one");
    RT_INPUT_CHECK(cl.search || !cl.json, "--json is the output of --search");
    if (cl.search) {
      const LayoutSearch s = search_layouts(loaded, cl.gpus, target.kind, target.cluster, target.capacity);
      return cl.json ? search_json(s, loaded, cl.gpus, target) : search_table(s, loaded, cl.gpus, target, cl.top);
    }
    const Config c = config_for_gpus(loaded, cl.gpus);
    return cl.max_context ? max_context_text(c, target) : plan_text(c, target);
  });
  if (world_rank() == 0) std::cout << text;
  return 0;
}

}  // namespace ringtrain
