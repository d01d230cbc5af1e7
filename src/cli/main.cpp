// ringtrain: the command-line entry point. Every rank parses the same command line and config;
// errors found there are printed once and end every rank with exit code 2. After that, any
// error on any rank ends the whole job (src/core/process.h).
#include <cblas.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "data/prepare_text.h"
#include "kernels/attention.h"
#include "kernels/cpu/ops_cpu.h"
#include "src/checkpoint/checkpoint_files.h"
#include "src/checkpoint/checkpoint_tools.h"
#include "parallel/mesh.h"
#include "src/cli/args.h"
#include "src/cli/dry_run.h"
#include "src/cli/import_model.h"
#include "src/cli/plan.h"
#include "src/config/config.h"
#include "src/core/cpu_affinity.h"
#include "src/core/error.h"
#include "src/core/launcher.h"
#include "src/core/process.h"
#include "src/eval/attend_command.h"
#include "src/eval/needle.h"
#include "src/train/trainer.h"
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
#include "kernels/cuda/backend_cuda.h"
#endif

using namespace ringtrain;

namespace {

MeshShape mesh_shape_of(const Config& c) {
  // The config resolved the degree (ring 1, ulysses cp, hybrid as given).
  return MeshShape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree};
}

// CPU threads per rank: run.threads, or the node's CPUs shared among its ranks within the CPUs
// this rank may run on. BLAS calls run single-threaded inside our own parallel regions
// (kernels/cpu). A configured count above the CPUs of the most tightly bound rank is said once,
// on rank 0 (collective: every rank calls this after building the mesh). Returns the CPU
// kernels' line for the run log (ISA path, attention tiles, caches); a bad RINGTRAIN_CPU_ISA is
// an input error here, on every rank, before any kernel runs.
std::string set_threads(const Config& c, const Mesh& mesh) {
  const int allowed = allowed_cpus();
  int threads = c.run.threads;
  if (threads <= 0)
    threads = default_threads(allowed, static_cast<int>(std::thread::hardware_concurrency()), mesh.local_size());
  int fewest = allowed;
  MPI_Allreduce(&allowed, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  const std::string warning = thread_binding_warning(threads, fewest, launcher_info().kind);
  if (!warning.empty() && world_rank() == 0) std::fprintf(stderr, "%s\n", warning.c_str());
  openblas_set_num_threads(threads);
  attention_set_cpu_threads(threads);
  return collectively([&] { return cpu_kernels_summary(c.model.head_dim()); });
}

// Every rank reads the same file with the same overrides: its errors are collective.
Config load_checked(const CommandLine& cl) {
  return collectively([&] {
    Config c = load_config(cl.config_path, cl.overrides);
    // A dry run on one process plans the config's own layout, whatever its size.
    if (!(cl.dry_run && world_size() == 1)) validate_for_world(c, world_size());
    // device: cuda without a GPU (or the GPU layer) is an input error, never a CPU run; a dry
    // run only plans, so it may plan a GPU job on any machine.
    if (!cl.dry_run) resolve_device(c);
    return c;
  });
}

void write_resolved_config(const Config& c) {
  if (world_rank() != 0) return;
  std::filesystem::create_directories(c.run.out_dir);
  std::ofstream(c.run.out_dir + "/config.yaml") << dump_config(c);
}

int run_train(const CommandLine& cl) {
  const Config c = load_checked(cl);
  if (cl.dry_run && world_size() == 1 && c.parallel.dp * c.parallel.cp * c.parallel.tp > 1) {
    print_dry_run_plan(c);
    return 0;
  }
  Mesh mesh(MPI_COMM_WORLD, mesh_shape_of(c));
  const std::string cpu_kernels = set_threads(c, mesh);
  if (cl.dry_run) {
    print_dry_run(c, mesh);
    return 0;
  }
  if (mesh.rank() == 0) {
    std::printf("ringtrain %s: %d ranks (dp %d x cp %d x tp %d, cp_mode %s), device %s, %s\n", RINGTRAIN_VERSION,
                mesh.size(), mesh.shape().dp, mesh.shape().cp, mesh.shape().tp, to_string(c.parallel.cp_mode).c_str(),
                to_string(resolve_device(c)).c_str(), to_string(c.train.precision).c_str());
    announce_launcher(c.run.out_dir);  // Slurm job name and ids, flushes
  }
  write_resolved_config(c);
  Trainer trainer(c, mesh);
  if (mesh.rank() == 0) {  // then every line until the summary names its step
    std::printf("compute: %s\n", trainer.compute().describe().c_str());
    if (resolve_device(c) == DeviceChoice::kCpu) std::printf("cpu kernels: %s\n", cpu_kernels.c_str());
    std::printf("--- resolved config ---\n%s---\n", dump_config(c).c_str());
    std::fflush(stdout);
  }
  const EvalResult e = trainer.train();
  if (trainer.stopped_by_signal()) return 0;  // checkpoint saved
  std::string line = "{\"eval_loss\": " + std::to_string(e.loss);
  if (e.accuracy >= 0) line += ", \"accuracy\": " + std::to_string(e.accuracy);
  line += ", \"eval_tokens\": " + std::to_string(e.tokens) + ", \"step\": " + std::to_string(trainer.state().step) + "}";
  emit_json_line(line, "");
  return 0;
}

int run_eval(const CommandLine& cl) {
  Config c = load_checked(cl);
  if (!cl.data.empty() && !cl.needle) {  // --needle: --data is the haystack
    c.data.task = Task::kText;
    c.data.val = cl.data;
    if (c.data.train.empty()) c.data.train = cl.data;
  }
  Mesh mesh(MPI_COMM_WORLD, mesh_shape_of(c));
  set_threads(c, mesh);
  if (cl.needle) {  // needle-in-a-haystack sweep (src/eval/needle.h)
    run_needle_sweep(c, mesh, NeedleOptions{cl.checkpoint, cl.data, cl.lengths, cl.depths, cl.samples, cl.cross_rank});
    return 0;
  }
  Trainer trainer(c, mesh);
  // --- checkpoints: --checkpoint P (file or directory), else checkpoint.dir's newest ---
  if (!cl.checkpoint.empty()) {
    trainer.load_checkpoint(cl.checkpoint, false);
  } else {
    const std::string newest =
        c.checkpoint.dir.empty() ? "" : resolve_checkpoint(c.checkpoint.dir, mesh, /*allow_none=*/true);
    if (!newest.empty())
      trainer.load_checkpoint(newest, false);
    else if (mesh.rank() == 0)
      warn("eval: no --checkpoint and no checkpoint in checkpoint.dir; evaluating the initial weights");
  }
  trainer.model().set_cross_rank(cl.cross_rank);
  const EvalResult e = trainer.evaluate(c.train.eval_batches);
  std::string line = "{\"eval_loss\": " + std::to_string(e.loss);
  if (e.accuracy >= 0) line += ", \"accuracy\": " + std::to_string(e.accuracy);
  line += ", \"eval_tokens\": " + std::to_string(e.tokens) + ", \"samples\": " + std::to_string(e.samples);
  if (!cl.cross_rank) line += ", \"cross_rank\": false";
  line += "}";
  emit_json_line(line, "");
  return 0;
}

int run_attend(const CommandLine& cl) {
  const Config c = load_checked(cl);
  Mesh mesh(MPI_COMM_WORLD, mesh_shape_of(c));
  set_threads(c, mesh);
  AttendOptions o;
  o.checkpoint = cl.checkpoint;
  o.text = cl.text;
  o.text_file = cl.text_file;
  o.data = cl.data;
  o.out = cl.out;
  o.sample = cl.sample;
  o.needle = cl.needle;
  o.length = cl.length;
  o.depth = cl.depth;
  o.layers = cl.layers;
  o.heads = cl.heads;
  o.rows = cl.rows;
  o.spans = cl.spans;
  o.pool = cl.pool;
  o.cross_rank = cl.cross_rank;
  run_attend_command(c, mesh, o);
  return 0;
}

int run_config(const CommandLine& cl) {
  const Config c = load_config(cl.config_path, cl.overrides);
  if (world_rank() == 0) std::cout << dump_config(c);
  return 0;
}

int run_prepare_text(const CommandLine& cl) {
  if (world_rank() == 0)
    prepare_text(cl.inputs, cl.out, cl.val_fraction, cl.width / 8, &std::cout, cl.doc_separator);
  return 0;
}

int dispatch(int argc, char** argv) {
  const CommandLine cl = collectively([&] { return parse_command_line(argc, argv); });
  switch (cl.command) {
    case Command::kHelp:
      if (world_rank() == 0) std::cout << usage_text() << '\n';
      return 0;
    case Command::kVersion:
      if (world_rank() == 0) {
        const GpuRuntime* rt = gpu_runtime();
        std::cout << "ringtrain " << RINGTRAIN_VERSION << " (GPU backend: "
                  << (rt == nullptr ? "none" : rt->emulated ? "emulated CUDA device" : "CUDA") << ")\n";
      }
      return 0;
    case Command::kTrain: return run_train(cl);
    case Command::kEval: return run_eval(cl);
    case Command::kAttend: return run_attend(cl);
    case Command::kPlan: return run_plan(cl);
    case Command::kConfig: return run_config(cl);
    case Command::kPrepareText: return run_prepare_text(cl);
    // --- checkpoints: one process reads the file; CKPT may be a directory ---
    case Command::kInspect:
      if (world_rank() == 0) inspect_checkpoint(resolve_checkpoint(cl.checkpoint), std::cout);
      return 0;
    case Command::kExport:
      if (world_rank() == 0) export_checkpoint(resolve_checkpoint(cl.checkpoint), cl.out_dir, std::cout);
      return 0;
    case Command::kImport:
      if (world_rank() == 0) import_hf_model(cl.hf_dir, cl.out, std::cout);
      return 0;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
  ringtrain::register_cuda_runtime();  // device: cuda (a real GPU, or the emulated one)
#endif
  MpiSession mpi(&argc, &argv);
  return run_guarded([&] { return dispatch(argc, argv); });
}
