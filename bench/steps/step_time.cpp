// Times Trainer::step() on any layout (run it under mpirun for world > 1): builds the Mesh and
// the Trainer from a YAML config (a file, or text on the command line) with --set overrides,
// runs --warmup untimed steps, then --steps timed ones, and prints one JSON line (rank 0):
//
//   {"world":8,"dp":2,"cp":2,"tp":2,"seq_len":1024,"step_s":[...],"step_s_min":..,
//    "step_s_median":..,"loss":..,"tokens_per_step":..,"params_local":..,
//    "host_peak_mib_max":..,"vmhwm_mib_max":..,"vmhwm_mib":[per rank],
//    "traffic":{"tp":{"bytes":..,"calls":..,"blocking_s":..,"by_op":{...}},...},"wait_s":..,
//    "plan":{"memory_mib":..,"state_mib":..,"step_s":..,"bytes":{"tp":..,...}}}
//
// Memory per rank, two ways: host_peak (the high-water mark of ringtrain's tensor storage,
// what the trainer's "mem X MiB" prints) and VmHWM (the kernel's peak resident set of the
// process: every std::vector, BLAS buffer and MPI buffer included). Traffic (--count-comm) is
// rank 0's payload bytes per step per mesh group over the timed steps, counted at the MPI layer
// (pmpi_counter.h); wait_s is rank 0's time in MPI_Wait*/Waitall per step. cpu_s_max: each
// step's process CPU time (all threads), the max over ranks; cpu_s_sum: summed over ranks.
// plan: what src/plan predicts for the same config (CPU backend): memory per rank (and its
// weights + gradients + moments, the state ZeRO shards), the step time of the `cpu` kind
// (src/plan/gpu_kinds.cpp: calibrated for 4 ranks on this machine's 2 cores) and bytes per rank
// per step per group, to set beside host_peak, step_s_min and traffic.
//
//   bench_steps_step_time (--config FILE | --yaml TEXT) [--set k=v ...] [--steps 3]
//                         [--warmup 1] [--count-comm]
#include <cblas.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/steps/pmpi_counter.h"
#include "kernels/attention.h"
#include "kernels/cpu/ops_cpu.h"
#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/core/tensor.h"
#include "src/plan/comm.h"
#include "src/plan/memory.h"
#include "src/plan/step_time.h"
#include "src/train/trainer.h"

using namespace ringtrain;

namespace {

// CPU time of this process, all threads (user + system). On a shared, oversubscribed machine
// it is steadier than wall time; for multi-rank runs it includes MPI's polling while waiting.
double process_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Peak resident set of this process (kB in /proc/self/status), in MiB; -1 if unreadable.
double vmhwm_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1.0;
}

std::string json_list(const std::vector<double>& v) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  o << ']';
  return o.str();
}

struct Options {
  std::string config_path, yaml;
  std::vector<std::string> overrides;
  int steps = 3, warmup = 1;
  bool count_comm = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) input_error("step_time: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--config") o.config_path = value();
    else if (a == "--yaml") o.yaml = value();
    else if (a == "--set") o.overrides.push_back(value());
    else if (a == "--steps") o.steps = std::stoi(value());
    else if (a == "--warmup") o.warmup = std::stoi(value());
    else if (a == "--count-comm") o.count_comm = true;
    else input_error("step_time: unknown option ", a);
  }
  if (o.config_path.empty() == o.yaml.empty()) input_error("step_time: give --config FILE or --yaml TEXT");
  if (o.steps < 1 || o.warmup < 0) input_error("step_time: --steps >= 1, --warmup >= 0");
  return o;
}

MeshShape mesh_shape_of(const Config& c) {
  return MeshShape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree};
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const Config c = o.config_path.empty() ? parse_config(o.yaml, "--yaml", o.overrides)
                                         : load_config(o.config_path, o.overrides);
  validate_for_world(c, world_size());
  Mesh mesh(MPI_COMM_WORLD, mesh_shape_of(c));
  // As the command line does (src/cli/main.cpp), and the attention kernels on the same threads.
  const int threads = c.run.threads > 0 ? c.run.threads : 1;
  openblas_set_num_threads(threads);
  attention_set_cpu_threads(threads);

  bench::pmpi_name_mesh(mesh);

  Trainer trainer(c, mesh);
  for (int s = 0; s < o.warmup; ++s) trainer.step();

  std::vector<double> times, cpu_max, cpu_sum;
  double loss = 0.0;
  bench::pmpi_reset();
  bench::pmpi_set_counting(o.count_comm);
  for (int s = 0; s < o.steps; ++s) {
    MPI_Barrier(mesh.world_comm());
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_s();
    loss = trainer.step().loss;
    // The step ends when its slowest rank ends: take the max over ranks.
    double dt[2] = {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                    process_cpu_s() - c0};
    double cpu = dt[1];
    bench::pmpi_set_counting(false);
    MPI_Allreduce(MPI_IN_PLACE, dt, 2, MPI_DOUBLE, MPI_MAX, mesh.world_comm());
    MPI_Allreduce(MPI_IN_PLACE, &cpu, 1, MPI_DOUBLE, MPI_SUM, mesh.world_comm());
    bench::pmpi_set_counting(o.count_comm);
    times.push_back(dt[0]);
    cpu_max.push_back(dt[1]);
    cpu_sum.push_back(cpu);
  }
  bench::pmpi_set_counting(false);

  double mem[2] = {host_bytes_peak() / 1048576.0, vmhwm_mib()};
  std::vector<double> all(2 * static_cast<size_t>(mesh.size()));
  MPI_Gather(mem, 2, MPI_DOUBLE, all.data(), 2, MPI_DOUBLE, 0, mesh.world_comm());
  if (mesh.rank() != 0) return 0;

  std::vector<double> host, hwm;
  for (int r = 0; r < mesh.size(); ++r) {
    host.push_back(all[2 * static_cast<size_t>(r)]);
    hwm.push_back(all[2 * static_cast<size_t>(r) + 1]);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const int64_t tokens = static_cast<int64_t>(c.parallel.dp) * c.train.micro_batch * c.train.grad_accum * c.train.seq_len;

  std::ostringstream j;
  j.precision(6);
  j << "{\"world\":" << mesh.size() << ",\"dp\":" << c.parallel.dp << ",\"cp\":" << c.parallel.cp
    << ",\"tp\":" << c.parallel.tp << ",\"cp_mode\":\"" << c.parallel.cp_mode << "\""
    << ",\"sequence_parallel\":" << (c.parallel.sequence_parallel ? "true" : "false")
    << ",\"zero\":" << c.parallel.zero_level() << ",\"seq_len\":" << c.train.seq_len
    << ",\"micro_batch\":" << c.train.micro_batch << ",\"grad_accum\":" << c.train.grad_accum
    << ",\"threads\":" << threads << ",\"step_s\":" << json_list(times) << ",\"step_s_min\":" << sorted.front()
    << ",\"step_s_median\":" << median << ",\"cpu_s_max\":" << json_list(cpu_max)
    << ",\"cpu_s_min\":" << *std::min_element(cpu_max.begin(), cpu_max.end())
    << ",\"cpu_s_sum\":" << json_list(cpu_sum) << ",\"loss\":" << loss << ",\"tokens_per_step\":" << tokens
    << ",\"params_local\":" << trainer.model().params().size()
    << ",\"host_peak_mib\":" << json_list(host) << ",\"host_peak_mib_max\":" << *std::max_element(host.begin(), host.end())
    << ",\"vmhwm_mib\":" << json_list(hwm) << ",\"vmhwm_mib_max\":" << *std::max_element(hwm.begin(), hwm.end());
  if (o.count_comm) {
    j << ",\"traffic\":{";
    bool first = true;
    for (const auto& [group, t] : bench::pmpi_traffic()) {
      j << (first ? "" : ",") << '"' << group << "\":{\"bytes\":" << t.bytes / o.steps
        << ",\"calls\":" << t.calls / o.steps << ",\"blocking_s\":" << t.blocking_s / o.steps << ",\"by_op\":{";
      bool f2 = true;
      for (const auto& [op, b] : t.bytes_by_op) {
        j << (f2 ? "" : ",") << '"' << op << "\":" << b / o.steps;
        f2 = false;
      }
      j << "}}";
      first = false;
    }
    j << "},\"wait_s\":" << bench::pmpi_wait_seconds() / o.steps;
  }
  const MemoryPlan mp = plan_memory(c, /*on_gpu=*/false);
  j << ",\"plan\":{\"memory_mib\":" << mp.total() / 1048576.0
    << ",\"state_mib\":" << mp.state() / 1048576.0 << ",\"zero_units_mib\":" << mp.zero_units / 1048576.0
    << ",\"step_s\":" << plan_step_time(c, gpu_kind("cpu"), Cluster{}).step << ",\"bytes\":{";
  bool first_group = true;
  for (const auto& [group, bytes] : plan_comm_bytes(c, /*on_gpu=*/false)) {
    j << (first_group ? "" : ",") << '"' << group << "\":" << static_cast<int64_t>(bytes);
    first_group = false;
  }
  j << "}}}";
  std::printf("%s\n", j.str().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  return run_guarded([&] { return run(argc, argv); });
}
