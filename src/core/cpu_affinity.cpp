#include "src/core/cpu_affinity.h"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace ringtrain {

int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

int default_threads(int allowed, int node_cpus, int local_ranks) {
  const int share = std::max(1, node_cpus / std::max(1, local_ranks));
  return std::max(1, std::min(allowed, share));
}

std::string thread_binding_warning(int threads, int allowed, const std::string& launcher) {
  if (threads <= allowed) return "";
  const std::string n = std::to_string(threads);
  std::string fix;
  if (launcher == "slurm")
    fix = "give each task the cores (srun --cpus-per-task=" + n + ")";
  else if (launcher == "mpirun")
    fix = "launch with `mpirun --bind-to none` or `mpirun --map-by slot:PE=" + n + "`";
  else
    fix = "widen the process's CPU affinity (taskset, numactl)";
  return "ringtrain: warning: run.threads is " + n + " but this rank may run on " + std::to_string(allowed) +
         (allowed == 1 ? " CPU" : " CPUs") + " (its CPU affinity), so its threads take turns: " + fix +
         ", or set run.threads: " + std::to_string(allowed);
}

}  // namespace ringtrain
