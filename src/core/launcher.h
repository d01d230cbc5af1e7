// What started this process: Slurm (srun / sbatch), Open MPI's mpirun, or nothing.
// The job's name and ids come from the launcher's environment; the trainer prints them in its
// banner and appends them to metrics.jsonl, so a run's log says which job (and which requeue
// of it) wrote it. The local rank (which picks the GPU) does NOT come from here: Mesh takes it
// from MPI's shared-memory communicator, which is right under every launcher.
#pragma once

#include <string>

namespace ringtrain {

struct LauncherInfo {
  std::string kind;          // "slurm", "mpirun" or "none"
  std::string job_id;        // SLURM_JOB_ID (empty outside Slurm)
  std::string job_name;      // SLURM_JOB_NAME
  std::string step_id;       // SLURM_STEP_ID (empty in a batch script's own process)
  std::string array_job_id;  // SLURM_ARRAY_JOB_ID / SLURM_ARRAY_TASK_ID (array jobs only)
  std::string array_task_id;
  int restart_count = 0;     // SLURM_RESTART_COUNT: how often the job was requeued
  std::string nodelist;      // SLURM_JOB_NODELIST
};

// Reads the environment of this process.
LauncherInfo launcher_info();

// One line for the log, e.g. "launcher: slurm job 42 'rt' step 0, restart 1, nodes n[1-2]".
std::string launcher_line(const LauncherInfo& info);

// The same as one JSON object for metrics.jsonl: no "step" or "loss" key and only string values,
// so loss readers (scripts/plot-metrics, the tests' losses()) skip it.
std::string launcher_json(const LauncherInfo& info);

// Rank 0 only (the caller checks): prints launcher_line and, under Slurm, appends launcher_json
// to <out_dir>/metrics.jsonl (creating out_dir).
void announce_launcher(const std::string& out_dir);

}  // namespace ringtrain
