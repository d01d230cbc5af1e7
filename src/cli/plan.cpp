#include "src/cli/plan.h"

#include <cstdio>
#include <iostream>
#include <map>

#include "src/core/error.h"
#include "src/core/process.h"
#include "src/plan/comm.h"
#include "src/plan/memory.h"

namespace ringtrain {
namespace {

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

}  // namespace

Config config_for_gpus(const Config& config, int gpus) {
  Config c = config;
  const long long cp_tp = 1LL * c.parallel.cp * c.parallel.tp;
  RT_INPUT_CHECK(gpus % cp_tp == 0, "--gpus ", gpus, ": parallel.cp x tp = ", c.parallel.cp, " x ", c.parallel.tp,
                 " = ", cp_tp, " does not divide it (dp = gpus / (cp*tp) must be whole)");
  c.parallel.dp = static_cast<int>(gpus / cp_tp);
  return c;
}

std::string plan_text(const Config& c, const GpuKind& kind) {
  const ParallelConfig& p = c.parallel;
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
  const double gib = 1.0 / (1024.0 * 1024.0 * 1024.0);
  if (kind.host())
    std::snprintf(fit, sizeof fit, "fits: host memory (the CPU backend has no device limit)\n");
  else
    std::snprintf(fit, sizeof fit, "fits: %s, %.1f GiB of the %s's %.1f GiB (%.0f%%; %s)\n",
                  m.total() <= kind.memory_bytes ? "yes" : "NO", m.total() * gib, kind.name.c_str(),
                  kind.memory_bytes * gib, 100.0 * m.total() / kind.memory_bytes, kind.source.c_str());
  text += fit;
  const std::map<std::string, double> comm = plan_comm_bytes(c);
  text += "bytes sent per rank and step, by group (the payload handed to the communicator):\n";
  if (comm.empty()) text += "  none (one rank)\n";
  for (const auto& [group, bytes] : comm) {
    text += "  " + group + std::string(13 - group.size(), ' ') + human_bytes(bytes) + "\n";
  }
  return text;
}

namespace {

std::string gib_text(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// The plan at the longest seq_len that fits `kind`, after a line saying what one step more needs.
std::string max_context_text(Config c, const GpuKind& kind) {
  RT_INPUT_CHECK(!kind.host(), "--max-context needs a GPU kind (--gpu ", kind.name,
                 " plans the CPU backend, which has no device memory limit)");
  const int step = seq_len_step(c);
  const int longest = max_seq_len(c, kind.memory_bytes);
  if (longest == 0) {
    c.train.seq_len = step;
    const MemoryPlan m = plan_memory(c, true);
    input_error("the model does not fit on the ", kind.name, " at any length: at seq_len ", step, " a rank needs ",
                gib_text(m.total()), " of its ", gib_text(kind.memory_bytes), " (weights, gradients and moments ",
                gib_text(m.weights + m.gradients + m.moments + m.bf16_weights),
                "); a larger parallel.tp, or ZeRO-1 over more dp, shrinks them");
  }
  c.train.seq_len = longest;
  Config next = c;
  next.train.seq_len = longest + step;
  return "max context: seq_len " + std::to_string(longest) + " (multiples of " + std::to_string(step) + " tried); " +
         std::to_string(longest + step) + " would need " + gib_text(plan_memory(next, true).total()) + "\n" +
         plan_text(c, kind);
}

}  // namespace

int run_plan(const CommandLine& cl) {
  // Under mpirun every rank plans the same thing (its errors are collective); rank 0 prints.
  const std::string text = collectively([&] {
    const Config c = config_for_gpus(load_config(cl.config_path, cl.overrides), cl.gpus);
    const GpuKind& kind = gpu_kind(cl.gpu);
    return cl.max_context ? max_context_text(c, kind) : plan_text(c, kind);
  });
  if (world_rank() == 0) std::cout << text;
  return 0;
}

}  // namespace ringtrain
