#include "src/train/trainer.h"

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "parallel/mesh.h"
#include "src/checkpoint/checkpoint.h"
#include "src/checkpoint/checkpoint_files.h"
#include "src/config/config_table.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/train/batches.h"
#include "src/train/lr_schedule.h"
#include "src/train/metrics_log.h"

namespace ringtrain {
namespace {

BatchPlan plan_for(const Config& c, Mesh& mesh) {
  BatchPlan p;
  p.dp = mesh.shape().dp;
  p.dp_rank = mesh.coord().dp;
  p.cp = mesh.shape().cp;
  p.cp_rank = mesh.coord().cp;
  p.micro_batch = c.train.micro_batch;
  p.seq_len = c.train.seq_len;
  p.window = c.model.sliding_window;
  return p;
}

// Set by SIGTERM/SIGUSR1 (cluster preemption); read at the end of each step.
volatile sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

void emit_json_line(const std::string& json, const std::string& path) {
  if (world_rank() != 0) return;
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (path.empty()) return;
  std::ofstream f(path, std::ios::app);
  f << json << '\n';
}

Trainer::Trainer(const Config& config, Mesh& mesh) : config_(config), mesh_(mesh) {
  // Test-only hook: RINGTRAIN_TEST_NAN_STEP=N poisons step N (1-based) on every rank;
  // RINGTRAIN_TEST_NAN_WHAT=loss makes the loss NaN, anything else a NaN in the first gradient
  // element of the last parameter (set before its reduction starts).
  if (const char* e = std::getenv("RINGTRAIN_TEST_NAN_STEP")) test_nan_step_ = std::atoll(e);
  const char* what = std::getenv("RINGTRAIN_TEST_NAN_WHAT");
  test_nan_loss_ = what && std::string(what) == "loss";
  train_data_ = make_dataset(config, Split::kTrain);
  val_data_ = make_dataset(config, Split::kVal);
  RT_INPUT_CHECK(train_data_->min_vocab() <= config.model.vocab_size, "vocabulary mismatch: data.",
                 config.data.task, " needs model.vocab_size >= ", train_data_->min_vocab(), " but it is ",
                 config.model.vocab_size);
  compute_ = std::make_unique<Compute>(config, mesh);
  model_ = std::make_unique<LlamaModel>(config, mesh, compute_->backend(), compute_->groups());
  model_->init_weights(config.run.seed);
  optimizer_ = std::make_unique<Optimizer>(config, mesh, compute_->backend(), compute_->groups(), model_->params(),
                                           model_->tp_partial_params());
  Optimizer* o = optimizer_.get();
  model_->set_unit_hooks({[o](int u) { o->grads_begin(u); }, [o](int u) { o->acquire_values(u); },
                          [o](int u) { o->prefetch_values(u); }, [o](int u) { o->release_values(u); }});
  if (mesh.rank() == 0) {
    std::filesystem::create_directories(config.run.out_dir);
    metrics_path_ = config.run.out_dir + "/metrics.jsonl";
  }
}

Trainer::~Trainer() = default;

// --- checkpoints ---
// The optimizer's moments as the checkpoint code sees them (host copies of this rank's range).
MomentsView Trainer::optimizer_moments() {
  return MomentsView{optimizer_->shard(), optimizer_->exp_avg_host(), optimizer_->exp_avg_sq_host()};
}

void Trainer::load_checkpoint(const std::string& spec, bool with_optimizer) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string path = resolve_checkpoint(spec, mesh_);
  const MomentsView moments = optimizer_moments();
  const CheckpointState s =
      read_checkpoint_file(path, config_, mesh_, model_->params(), with_optimizer ? &moments : nullptr);
  if (with_optimizer) {
    optimizer_->push_state();
    state_.step = s.step;
    state_.tokens_seen = s.tokens_seen;
    last_saved_step_ = s.step;
  }
  if (mesh_.rank() == 0) {
    std::printf("loaded checkpoint %s (step %lld%s, %.2f s)\n", path.c_str(), static_cast<long long>(s.step),
                with_optimizer ? ", weights, moments and train state" : ", weights",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::fflush(stdout);
  }
}

std::string Trainer::save_checkpoint() {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  CheckpointState s;
  s.step = state_.step;
  s.tokens_seen = state_.tokens_seen;
  s.lr = state_.step > 0 ? learning_rate(config_.train, static_cast<int>(state_.step - 1)) : 0.0;
  SaveTiming timing;
  optimizer_->pull_state();
  const std::string path = ringtrain::save_checkpoint(config_, mesh_, model_->params(), optimizer_moments(), s, &timing);
  last_saved_step_ = state_.step;
  if (mesh_.rank() == 0) {
    if (metrics_) metrics_->end_live_line();
    std::printf("checkpoint saved at step %lld: %s (%.2f s: write %.2f s, fsync %.2f s)\n",
                static_cast<long long>(state_.step), path.c_str(),
                std::chrono::duration<double>(clock::now() - t0).count(), timing.write_s, timing.sync_s);
    std::fflush(stdout);
  }
  return path;
}

void Trainer::begin_checkpoints() {
  const CheckpointConfig& c = config_.checkpoint;
  if (!c.dir.empty()) {
    lock_ = std::make_unique<CheckpointLock>();
    lock_->acquire(c.dir, mesh_);
    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;  // a signal must not fail a write or an MPI call with EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);
  }
  // resume first: a run started with init_from that was preempted continues from its own
  // checkpoint, not from the start again.
  if (c.resume == "auto" && !c.dir.empty()) {
    const std::string path = resolve_checkpoint(c.dir, mesh_, /*allow_none=*/true);
    if (!path.empty()) return load_checkpoint(path, true);
  } else if (c.resume != "auto" && c.resume != "none") {
    return load_checkpoint(c.resume, true);
  }
  if (!c.init_from.empty()) init_from_checkpoint(c.init_from);
}

void Trainer::init_from_checkpoint(const std::string& spec) {
  const std::string path = resolve_checkpoint(spec, mesh_);
  // The model section may change only where no tensor changes (RoPE and the window); anything
  // else would load weights into a model that computes something else, or fail on shapes.
  std::string problem;
  if (mesh_.rank() == 0) {
    try {
      const Config stored =
          parse_config(read_checkpoint_header(path).config_yaml, path + " (stored config)", {}, ConfigChecks{.paths = false});
      problem = model_differences(stored, "in the checkpoint", config_, "in this config",
                                  {"rope_*", "sliding_window", "init_std"});
      if (!problem.empty()) {
        problem = "checkpoint.init_from: " + path + " holds another model: " + problem +
                  " (init_from may change only rope_theta, rope_scaling and its rope_* parameters, sliding_window)";
      }
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kInput) throw;
      problem = std::string("checkpoint.init_from: ") + e.what();
    }
  }
  long long n = static_cast<long long>(problem.size());
  MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, mesh_.world_comm()));
  problem.resize(static_cast<size_t>(n));
  if (n > 0) MPI_CHECK(MPI_Bcast(problem.data(), static_cast<int>(n), MPI_CHAR, 0, mesh_.world_comm()));
  if (!problem.empty()) collective_input_error(problem);
  load_checkpoint(path, false);
}

bool Trainer::stop_requested() {
  if (config_.checkpoint.dir.empty()) return false;
  int32_t flag = g_stop_signal;
  mesh_.world().all_reduce(&flag, 1, DType::kI32, ReduceOp::kMax);
  return flag != 0;
}
// --- end checkpoints ---

StepResult Trainer::step() {
  const TrainConfig& t = config_.train;
  const BatchPlan plan = plan_for(config_, mesh_);
  std::vector<LocalBatch>& micro = micro_;
  micro.resize(static_cast<size_t>(t.grad_accum));
  // The loss is the mean over every token of the global batch, whatever the layout: count the
  // scored tokens first (each dp x cp rank counts its own; tp ranks hold copies).
  double counts[2] = {0.0, 0.0};  // [scored tokens, unused]
  for (int a = 0; a < t.grad_accum; ++a) {
    load_local_batch(*train_data_, plan, static_cast<uint64_t>(state_.step), a, &micro[static_cast<size_t>(a)]);
    for (int32_t y : micro[static_cast<size_t>(a)].targets) counts[0] += y >= 0;
  }
  mesh_.dp_cp().all_reduce(counts, 1, DType::kF64, ReduceOp::kSum);
  RT_INPUT_CHECK(counts[0] > 0, "step ", state_.step, ": the global batch has no scored tokens");
  const float scale = static_cast<float>(1.0 / counts[0]);

  const bool poison = test_nan_step_ == state_.step + 1;
  const bool poison_loss = poison && test_nan_loss_;
  const int poison_param = poison && !poison_loss ? static_cast<int>(model_->params().params().size()) - 1 : -1;

  double loss_sum = 0.0;
  for (int a = 0; a < t.grad_accum; ++a) {
    const bool last = a + 1 == t.grad_accum;
    // captures by value (16 bytes): the std::function holds it in place, no allocation per call
    loss_sum += model_->forward_backward(micro[static_cast<size_t>(a)], scale, [this, last, poison_param](int first, int lastp) {
      if (last && poison_param >= first && poison_param <= lastp) {
        Param& p = model_->params().params()[static_cast<size_t>(poison_param)];
        if (p.numel > 0) compute_->backend().fill(p.grad.f32(), std::numeric_limits<float>::quiet_NaN(), 1);
      }
      optimizer_->grads_ready(first, lastp, last);
    });
  }
  mesh_.dp_cp().all_reduce(&loss_sum, 1, DType::kF64, ReduceOp::kSum);
  if (poison_loss) loss_sum = std::numeric_limits<double>::quiet_NaN();

  StepResult r;
  r.loss = loss_sum / counts[0];
  r.grad_norm = optimizer_->finish_gradients();
  r.lr = learning_rate(t, static_cast<int>(state_.step));
  r.tokens = static_cast<int64_t>(mesh_.shape().dp) * t.micro_batch * t.grad_accum * t.seq_len;
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    const std::string what = !std::isfinite(r.loss) ? "loss" : "gradient norm";
    std::string where = optimizer_->first_nonfinite_grad();
    std::string msg = "non-finite " + what + " at step " + std::to_string(state_.step + 1) +
                      (where.empty() ? "" : " (first non-finite gradient: " + where + ")");
    if (t.on_nonfinite == OnNonFinite::kStop) fault(msg, "; stopping (train.on_nonfinite: stop)");
    if (mesh_.rank() == 0) warn(msg + "; step skipped (train.on_nonfinite: skip)");
    optimizer_->discard_gradients();
    r.skipped = true;
  } else {
    optimizer_->update(r.lr, state_.step + 1);
  }
  state_.step += 1;
  state_.tokens_seen += r.tokens;
  return r;
}

EvalResult Trainer::evaluate(int batches) {
  const BatchPlan plan = plan_for(config_, mesh_);
  double sums[2] = {0.0, 0.0};      // loss sum, scored tokens
  double samples[2] = {0.0, 0.0};   // exact matches, samples with answers
  LocalBatch batch;
  std::vector<float> row_loss;
  std::vector<int32_t> argmax;
  for (int e = 0; e < batches; ++e) {
    load_local_batch(*val_data_, plan, static_cast<uint64_t>(e), 0, &batch);
    model_->forward_eval(batch, &row_loss, &argmax);
    std::vector<double> wrong(static_cast<size_t>(batch.b)), answers(static_cast<size_t>(batch.b));
    for (size_t i = 0; i < batch.targets.size(); ++i) {
      if (batch.targets[i] < 0) continue;
      sums[0] += row_loss[i];
      sums[1] += 1;
      if (batch.answer[i]) {
        const size_t j = i / static_cast<size_t>(batch.s_local);
        answers[j] += 1;
        wrong[j] += argmax[i] != batch.targets[i];
      }
    }
    // A sample's answer may straddle cp ranks: sum its wrong digits over the cp group.
    mesh_.cp().all_reduce(wrong.data(), wrong.size(), DType::kF64, ReduceOp::kSum);
    mesh_.cp().all_reduce(answers.data(), answers.size(), DType::kF64, ReduceOp::kSum);
    for (int j = 0; j < batch.b; ++j)
      if (answers[static_cast<size_t>(j)] > 0) {
        samples[1] += 1;
        samples[0] += wrong[static_cast<size_t>(j)] == 0;
      }
  }
  mesh_.dp_cp().all_reduce(sums, 2, DType::kF64, ReduceOp::kSum);
  mesh_.dp().all_reduce(samples, 2, DType::kF64, ReduceOp::kSum);
  EvalResult r;
  r.loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  r.tokens = static_cast<int64_t>(sums[1]);
  r.samples = static_cast<int64_t>(samples[1]);
  r.accuracy = val_data_->has_accuracy() && samples[1] > 0 ? samples[0] / samples[1] : -1.0;
  return r;
}

void Trainer::log_step(const StepResult& r, double seconds) {
  if (!metrics_) return;  // rank 0 only
  StepMetrics m;
  m.step = state_.step;
  m.loss = r.loss;
  m.lr = r.lr;
  m.grad_norm = r.grad_norm;
  m.step_tokens = r.tokens;
  m.seconds = seconds;
  m.tokens_seen = state_.tokens_seen;
  m.skipped = r.skipped;
  const int64_t s = state_.step;
  metrics_->step(m, s % config_.log.every == 0 || s == config_.train.steps || s == 1);
}

void Trainer::log_eval(const EvalResult& e) {
  if (!metrics_) return;  // rank 0 only
  metrics_->eval(EvalMetrics{state_.step, e.loss, e.accuracy, e.tokens});
}

EvalResult Trainer::train() {
  const TrainConfig& t = config_.train;
  using clock = std::chrono::steady_clock;
  begin_checkpoints();
  const bool checkpoints = !config_.checkpoint.dir.empty();
  if (mesh_.rank() == 0)
  {
    metrics_ = std::make_unique<MetricsLog>(config_, mesh_.size(), model_->flops_per_token(t.seq_len), state_.step,
                                            state_.tokens_seen);
    if (!compute_->backend().on_host())
      metrics_->set_device_peak([this] { return compute_->backend().memory_peak(); });
  }
  RunEnd end;
  while (state_.step < t.steps) {
    const auto t0 = clock::now();
    const StepResult r = step();
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    elapsed_ += dt;
    log_step(r, dt);
    if (t.eval_every > 0 && state_.step % t.eval_every == 0 && state_.step < t.steps)
      log_eval(evaluate(t.eval_batches));
    const int every = config_.checkpoint.every;
    if (checkpoints && every > 0 && state_.step % every == 0) end.last_checkpoint = save_checkpoint();
    if (stop_requested()) {  // SIGTERM/SIGUSR1: finish this step, save, stop
      if (last_saved_step_ != state_.step) end.last_checkpoint = save_checkpoint();
      if (metrics_) {
        metrics_->end_live_line();
        std::printf("stopping on signal %d after step %lld; resume with checkpoint.resume: auto\n",
                    static_cast<int>(g_stop_signal != 0 ? g_stop_signal : SIGTERM), static_cast<long long>(state_.step));
        std::fflush(stdout);
        end.step = state_.step;
        end.stopped_by_signal = true;
        metrics_->summary(end);
      }
      stopped_by_signal_ = true;
      return EvalResult{};
    }
  }
  if (checkpoints && last_saved_step_ != state_.step) end.last_checkpoint = save_checkpoint();
  EvalResult final_eval = evaluate(t.eval_batches);
  log_eval(final_eval);
  if (metrics_) {  // the summary, then main's final eval JSON line (the run's last line)
    end.step = state_.step;
    end.has_eval = true;
    end.eval = EvalMetrics{state_.step, final_eval.loss, final_eval.accuracy, final_eval.tokens};
    metrics_->summary(end);
  }
  return final_eval;
}

}  // namespace ringtrain
