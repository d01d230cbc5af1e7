// The CPUs this process may run on, and the thread count that fits them. A launcher may bind a
// rank to fewer cores than the node has (Open MPI's mpirun binds each rank to one core when it
// starts two ranks or fewer); threads beyond those cores only take turns on them, so the
// default thread count is read from the affinity mask, and a configured count above it is
// worth a warning that names the launcher option that lifts the binding.
#pragma once

#include <string>

namespace ringtrain {

// CPUs in this process's affinity mask (sched_getaffinity); the online CPUs where it cannot be read.
int allowed_cpus();

// run.threads: 0 -> the node's CPUs shared among its ranks, never more than the CPUs this rank
// may run on (ranks bound to their own cores get exactly those).
int default_threads(int allowed, int node_cpus, int local_ranks);

// Empty when `threads` fit in `allowed` CPUs; else one line saying so and how to launch instead
// (launcher: LauncherInfo::kind, "mpirun", "slurm" or "none").
std::string thread_binding_warning(int threads, int allowed, const std::string& launcher);

}  // namespace ringtrain
