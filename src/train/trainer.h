// The training loop: for each step, grad_accum micro-batches of forward/backward with the
// gradient reduction overlapping backward, the global-norm clip, AdamW, logging, periodic
// evaluation and checkpoints. Everything a step touches flows from here:
//   Trainer::step -> load_local_batch (data/) -> LlamaModel::forward_backward (src/model/,
//   kernels/, parallel/) -> Optimizer::finish_gradients / update (src/train/optimizer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "src/config/config.h"
#include "src/model/llama.h"
#include "src/train/compute.h"
#include "src/checkpoint/checkpoint.h"
#include "src/train/optimizer.h"

namespace ringtrain {

class Mesh;
class CheckpointLock;
class MetricsLog;

// Everything besides weights and moments that a resumed run needs.
struct TrainState {
  int64_t step = 0;         // steps completed
  int64_t tokens_seen = 0;  // global tokens trained on
};

struct EvalResult {
  double loss = 0.0;
  double accuracy = -1.0;  // -1: the task has no answer positions
  int64_t tokens = 0;
  int64_t samples = 0;
};

struct StepResult {
  double loss = 0.0;
  double grad_norm = 0.0;
  double lr = 0.0;
  int64_t tokens = 0;
  bool skipped = false;
};

class Trainer {
 public:
  Trainer(const Config& config, Mesh& mesh);
  ~Trainer();

  // Runs from state().step to train.steps, with logging, evals and checkpoints. Returns the
  // final eval.
  EvalResult train();
  StepResult step();
  EvalResult evaluate(int batches);

  // --- checkpoints (src/checkpoint) ---
  // Loads `spec` (a checkpoint file, or a directory: its newest valid one) into the model, and
  // with `with_optimizer` also the moments and the train state. Collective.
  void load_checkpoint(const std::string& spec, bool with_optimizer);
  // checkpoint.init_from: the weights of `spec` at step 0 with a fresh optimizer, after checking
  // that the model sections agree but for RoPE and the window (input error naming both values).
  void init_from_checkpoint(const std::string& spec);
  // Saves the current state to checkpoint.dir (collective). Returns the path.
  std::string save_checkpoint();
  MomentsView optimizer_moments();
  // train() ended early on SIGTERM/SIGUSR1 after saving a checkpoint.
  bool stopped_by_signal() const { return stopped_by_signal_; }
  // --- end checkpoints ---

  LlamaModel& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  TrainState& state() { return state_; }
  const Config& config() const { return config_; }
  Mesh& mesh() { return mesh_; }
  Compute& compute() { return *compute_; }

 private:
  void log_step(const StepResult& r, double seconds);  // every step; a line at log steps
  void log_eval(const EvalResult& e);
  void begin_checkpoints();  // lock checkpoint.dir, resume per checkpoint.resume, signals
  bool stop_requested();     // a signal reached any rank (one int all-reduce per step)

  Config config_;
  Mesh& mesh_;
  std::unique_ptr<Compute> compute_;  // outlives the model and optimizer (their buffers)
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Dataset> train_data_, val_data_;
  // The micro-batches of a step, reused from step to step (load_local_batch overwrites every
  // field): a steady-state step allocates nothing for its batches.
  std::vector<LocalBatch> micro_;
  // Test-only fault injection (tests/faults/test_nonfinite.sh), read once: step to poison
  // (1-based, 0: none) and whether the loss (else a gradient) turns NaN.
  int64_t test_nan_step_ = 0;
  bool test_nan_loss_ = false;
  TrainState state_;
  std::string metrics_path_;
  double elapsed_ = 0.0;
  std::unique_ptr<CheckpointLock> lock_;
  int64_t last_saved_step_ = -1;
  bool stopped_by_signal_ = false;
  std::unique_ptr<MetricsLog> metrics_;  // rank 0, during train(): lines, metrics.jsonl, TensorBoard
};

// Prints one JSON object as a line (rank 0 only) and appends it to `path` if not empty.
void emit_json_line(const std::string& json, const std::string& path);

}  // namespace ringtrain
