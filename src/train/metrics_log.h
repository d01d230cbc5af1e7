// What rank 0 tells the user about a training run (docs/METRICS.md lists every metric):
//  - stdout: one plain line per log step ("step 40/300 | loss ... | eta ..."), and on a terminal
//    (log.progress auto) or always (log.progress always) a live line redrawn with \r between log
//    steps; without one (a file, Slurm's log) there is never a \r or an escape sequence;
//  - <run.out_dir>/metrics.jsonl: one JSON object per log step and per eval;
//  - <run.out_dir>/tb/events.out.tfevents.*: the same numbers as TensorBoard scalars, and the
//    resolved config as a text summary (log.tensorboard);
//  - at the end, a summary as text lines and as one JSON line {"summary": {...}} (also written
//    to <run.out_dir>/summary.json).
// Every number goes through one list of (key, value) pairs per line, so metrics.jsonl and the
// event files cannot disagree on which metrics exist.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

class TensorBoardWriter;

struct StepMetrics {
  int64_t step = 0;         // steps completed, this one included
  double loss = 0.0;
  double lr = 0.0;
  double grad_norm = 0.0;
  int64_t step_tokens = 0;  // global tokens of this step (dp * micro_batch * grad_accum * seq_len)
  double seconds = 0.0;     // this step's wall time
  int64_t tokens_seen = 0;  // global tokens trained on so far (resumed runs included)
  bool skipped = false;     // non-finite loss, update skipped (train.on_nonfinite: skip)
};

struct EvalMetrics {
  int64_t step = 0;
  double loss = 0.0;
  double accuracy = -1.0;  // -1: the task has no answers
  int64_t tokens = 0;
};

struct RunEnd {
  int64_t step = 0;
  bool stopped_by_signal = false;
  std::string last_checkpoint;  // empty: none saved by this run
  bool has_eval = false;
  EvalMetrics eval;
};

// The TensorBoard tag of a metrics.jsonl key ("loss" -> "train/loss"); docs/METRICS.md has the
// table, tests/metrics/tb_check.py reads it back.
std::string tensorboard_tag(const std::string& key);

// Peak resident set size of this process in bytes (VmHWM of /proc/self/status); 0 if unknown.
size_t process_rss_peak();

// "12.3s", "4m05s", "2h07m".
std::string format_duration(double seconds);

class MetricsLog {
 public:
  // Rank 0 only. `flops_per_token`: model FLOPs per trained token (forward + backward, see
  // LlamaModel::flops_per_token); `world_size` devices share them for MFU. `start_step` and
  // `start_tokens`: where this run begins (non-zero after a resume).
  MetricsLog(const Config& config, int world_size, double flops_per_token, int64_t start_step,
             int64_t start_tokens);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Called after every step; `logged`: a log step (line, metrics.jsonl, event file). Between log
  // steps only the live line (if any) is redrawn.
  void step(const StepMetrics& m, bool logged);
  void eval(const EvalMetrics& e);
  // Ends a live line being drawn so that other output starts on a fresh line.
  void end_live_line();
  // Prints the end-of-run summary (text, then the JSON line) and writes summary.json.
  void summary(const RunEnd& end);

  // A GPU run's peak device memory (bytes held by tensors, this rank) joins the line, the
  // records and the summary as peak_device_mib; unset on the CPU.
  void set_device_peak(std::function<size_t()> peak_bytes) { device_peak_ = std::move(peak_bytes); }

  // Model FLOPs utilization of a global throughput; < 0 when log.peak_tflops is not set.
  double mfu(double tokens_per_s) const;
  const std::string& metrics_path() const { return metrics_path_; }
  std::string tensorboard_dir() const;

 private:
  using Fields = std::vector<std::pair<std::string, double>>;
  void write_record(int64_t step, const Fields& fields, const std::string& extra_json);
  std::string step_line(const StepMetrics& m, double tokens_per_s, bool full) const;

  std::string out_dir_, checkpoint_dir_;  // run.out_dir, checkpoint.dir
  double peak_tflops_;                    // log.peak_tflops
  int64_t total_steps_;                   // train.steps
  std::function<size_t()> device_peak_;
  int world_size_;
  double flops_per_token_;
  int64_t start_step_, start_tokens_;
  bool live_ = false;         // draw a \r progress line
  bool live_showing_ = false;  // a live line is on the screen, not ended by a newline
  double last_draw_ = -1.0;    // when the live line was last drawn (run seconds)
  std::string metrics_path_;
  std::unique_ptr<TensorBoardWriter> tb_;
  double start_time_;          // steady-clock seconds at construction
  double step_seconds_ = 0.0;  // sum of step wall times this run
  int64_t steps_run_ = 0;
  StepMetrics last_;
};

}  // namespace ringtrain
