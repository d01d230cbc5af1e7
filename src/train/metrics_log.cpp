#include "src/train/metrics_log.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "src/core/tensor.h"
#include "src/train/tensorboard.h"

namespace ringtrain {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// JSON numbers: the shortest text that reads back as the same double, so that a reader's
// float32 of it equals the event file's float32 (a 9-digit rounding would round twice and
// miss by one ulp now and then); non-finite values are null.
std::string json_num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else o += c;
  }
  return o + "\"";
}

constexpr double kMiB = 1048576.0;
// Between log steps the live line is redrawn at most this often (a fast step loop would
// otherwise spend its time writing to the terminal).
constexpr double kRedrawSeconds = 0.1;

// Whether rank 0's output reaches a terminal. Under a launcher our stdout may be a
// pseudo-terminal of the launcher's even when the job's output goes to a file (Open MPI's
// mpirun gives every rank one, also for `mpirun ... > log`), so there a tty on our side says
// nothing: what counts is the launcher's stdout, our parent's (mpirun on its own node; on other
// nodes orted, srun's slurmstepd or hydra's proxy, whose stdout is no terminal: plain lines).
// Launched or not is read from the environment the process started with (/proc/self/environ):
// a singleton Open MPI adds the same variables to its environment in MPI_Init.
bool started_by_launcher() {
  std::ifstream f("/proc/self/environ", std::ios::binary);
  if (!f) return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_RANK") || std::getenv("SLURM_PROCID");
  for (std::string var; std::getline(f, var, '\0');)
    for (const char* name : {"OMPI_COMM_WORLD_SIZE=", "PMI_RANK=", "PMIX_RANK=", "SLURM_PROCID="})
      if (var.rfind(name, 0) == 0) return true;
  return false;
}

bool stdout_is_terminal() {
  if (!isatty(STDOUT_FILENO)) return false;
  if (!started_by_launcher()) return true;
  std::error_code ec;
  const std::string parent_out =
      std::filesystem::read_symlink("/proc/" + std::to_string(getppid()) + "/fd/1", ec).string();
  if (ec) return false;
  return parent_out.rfind("/dev/pts/", 0) == 0 || parent_out.rfind("/dev/tty", 0) == 0 ||
         parent_out == "/dev/console";
}

}  // namespace

std::string tensorboard_tag(const std::string& key) {
  if (key == "eval_loss") return "eval/loss";
  if (key == "accuracy") return "eval/accuracy";
  if (key == "eval_tokens") return "eval/tokens";
  if (key == "tokens_per_s" || key == "mfu" || key == "elapsed_s") return "perf/" + key;
  if (key == "peak_host_mib" || key == "rss_peak_mib" || key == "peak_device_mib") return "memory/" + key;
  return "train/" + key;  // loss, lr, grad_norm, tokens
}

size_t process_rss_peak() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<size_t>(std::stoull(line.substr(6))) * 1024;  // kB
  return 0;
}

std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  return buf;
}

MetricsLog::MetricsLog(const Config& config, int world_size, double flops_per_token, int64_t start_step,
                       int64_t start_tokens)
    : out_dir_(config.run.out_dir),
      checkpoint_dir_(config.checkpoint.dir),
      peak_tflops_(config.log.peak_tflops),
      total_steps_(config.train.steps),
      world_size_(world_size),
      flops_per_token_(flops_per_token),
      start_step_(start_step),
      start_tokens_(start_tokens),
      start_time_(now_s()) {
  const Progress p = config.log.progress;
  live_ = p == Progress::kAlways || (p == Progress::kAuto && stdout_is_terminal());
  std::filesystem::create_directories(config.run.out_dir);
  metrics_path_ = config.run.out_dir + "/metrics.jsonl";
  if (config.log.tensorboard) {
    tb_ = std::make_unique<TensorBoardWriter>(tensorboard_dir());
    // A resumed run: readers drop what a predecessor logged after the checkpoint, from the
    // first step this run logs again (step numbers count completed steps).
    if (start_step > 0) tb_->add_session_start(start_step + 1);
    std::string md = "Resolved config of run `" + config.run.name + "` (rank 0, step " + std::to_string(start_step) +
                     "):\n\n";
    std::istringstream lines(dump_config(config));
    for (std::string line; std::getline(lines, line);) md += "    " + line + "\n";  // Markdown code block
    tb_->add_text(start_step, "config", md);
  }
  last_.step = start_step;
  last_.loss = NAN;
}

MetricsLog::~MetricsLog() = default;

std::string MetricsLog::tensorboard_dir() const { return out_dir_ + "/tb"; }

double MetricsLog::mfu(double tokens_per_s) const {
  if (peak_tflops_ <= 0 || flops_per_token_ <= 0) return -1.0;
  return flops_per_token_ * tokens_per_s / (world_size_ * peak_tflops_ * 1e12);
}

void MetricsLog::end_live_line() {
  if (!live_showing_) return;
  std::fputs("\r\033[K", stdout);  // erase it: the next line takes its place
  std::fflush(stdout);
  live_showing_ = false;
}

std::string MetricsLog::step_line(const StepMetrics& m, double tps, bool full) const {
  const int64_t total = total_steps_;
  const int64_t done = m.step - start_step_;
  const double eta = done > 0 ? step_seconds_ / static_cast<double>(done) * static_cast<double>(total - m.step) : NAN;
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, "step %lld/%lld | loss %.4f", static_cast<long long>(m.step),
                        static_cast<long long>(total), m.loss);
  auto add = [&](const char* f, auto... v) {
    if (n >= 0 && n < static_cast<int>(sizeof buf)) n += std::snprintf(buf + n, sizeof buf - static_cast<size_t>(n), f, v...);
  };
  if (full) add(" | lr %.3e | grad norm %.3f", m.lr, m.grad_norm);
  add(" | %.0f tok/s", tps);
  const double u = mfu(tps);
  if (u >= 0) add(" | mfu %.1f%%", 100.0 * u);
  if (full && device_peak_) add(" | mem %.0f MiB device", static_cast<double>(device_peak_()) / kMiB);
  if (full && !device_peak_) add(" | mem %.0f MiB", host_bytes_peak() / kMiB);
  add(" | elapsed %s | eta %s", format_duration(now_s() - start_time_).c_str(), format_duration(eta).c_str());
  if (m.skipped) add(" | skipped");
  return buf;
}

// The event file first, then metrics.jsonl: a run killed between the two has every step of
// metrics.jsonl in its event file (which may hold one step more).
void MetricsLog::write_record(int64_t step, const Fields& fields, const std::string& extra_json) {
  if (tb_) {
    std::vector<std::pair<std::string, float>> scalars;
    for (const auto& [k, v] : fields) scalars.emplace_back(tensorboard_tag(k), static_cast<float>(v));
    tb_->add_scalars(step, scalars);
  }
  std::ostringstream os;
  os << "{\"step\": " << step;
  for (const auto& [k, v] : fields) os << ", " << json_str(k) << ": " << json_num(v);
  os << extra_json << "}\n";
  std::ofstream f(metrics_path_, std::ios::app);
  f << os.str();
  f.flush();
}

void MetricsLog::step(const StepMetrics& m, bool logged) {
  step_seconds_ += m.seconds;
  steps_run_ += 1;
  last_ = m;
  const double tps = m.seconds > 0 ? static_cast<double>(m.step_tokens) / m.seconds : 0.0;
  if (logged) {
    const std::string line = step_line(m, tps, true);
    if (live_) std::printf("\r%s\033[K\n", line.c_str());
    else std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    live_showing_ = false;
    Fields f = {{"loss", m.loss},
                {"lr", m.lr},
                {"grad_norm", m.grad_norm},
                {"tokens_per_s", tps}};
    const double u = mfu(tps);
    if (u >= 0) f.emplace_back("mfu", u);
    f.emplace_back("tokens", static_cast<double>(m.tokens_seen));
    f.emplace_back("elapsed_s", now_s() - start_time_);
    f.emplace_back("peak_host_mib", host_bytes_peak() / kMiB);
    f.emplace_back("rss_peak_mib", process_rss_peak() / kMiB);
    if (device_peak_) f.emplace_back("peak_device_mib", static_cast<double>(device_peak_()) / kMiB);
    write_record(m.step, f, m.skipped ? ", \"skipped\": true" : "");
    return;
  }
  if (!live_) return;
  const double t = now_s() - start_time_;
  if (live_showing_ && t - last_draw_ < kRedrawSeconds) return;
  last_draw_ = t;
  std::printf("\r%s\033[K", step_line(m, tps, false).c_str());
  std::fflush(stdout);
  live_showing_ = true;
}

void MetricsLog::eval(const EvalMetrics& e) {
  end_live_line();
  std::printf("eval step %lld | loss %.4f", static_cast<long long>(e.step), e.loss);
  if (e.accuracy >= 0) std::printf(" | accuracy %.4f", e.accuracy);
  std::printf(" | %lld tokens\n", static_cast<long long>(e.tokens));
  std::fflush(stdout);
  Fields f = {{"eval_loss", e.loss}};
  if (e.accuracy >= 0) f.emplace_back("accuracy", e.accuracy);
  f.emplace_back("eval_tokens", static_cast<double>(e.tokens));
  write_record(e.step, f, "");
}

void MetricsLog::summary(const RunEnd& end) {
  end_live_line();
  const double wall = now_s() - start_time_;
  const int64_t tokens = last_.tokens_seen - start_tokens_;
  const int64_t steps = end.step - start_step_;
  const double tps = step_seconds_ > 0 ? static_cast<double>(tokens) / step_seconds_ : 0.0;
  const double u = steps > 0 ? mfu(tps) : -1.0;
  const double host_mib = host_bytes_peak() / kMiB, rss_mib = process_rss_peak() / kMiB;
  const std::string tb = tb_ ? tensorboard_dir() : "";

  std::printf("--- run summary ---\n");
  std::printf("steps        %lld (step %lld to %lld)%s, %lld tokens\n", static_cast<long long>(steps),
              static_cast<long long>(start_step_), static_cast<long long>(end.step),
              end.stopped_by_signal ? ", stopped by a signal" : "", static_cast<long long>(tokens));
  std::printf("time         %s wall, %s in training steps\n", format_duration(wall).c_str(),
              format_duration(step_seconds_).c_str());
  if (u >= 0)
    std::printf("throughput   %.0f tokens/s, MFU %.1f%% (%.3g GFLOP/token, peak %g TFLOPS x %d devices)\n", tps,
                100.0 * u, flops_per_token_ / 1e9, peak_tflops_, world_size_);
  else
    std::printf("throughput   %.0f tokens/s (MFU: set log.peak_tflops; %.3g GFLOP/token)\n", tps,
                flops_per_token_ / 1e9);
  std::printf("memory       peak %.0f MiB in tensors, peak RSS %.0f MiB (rank 0)\n", host_mib, rss_mib);
  if (device_peak_)
    std::printf("device       peak %.0f MiB in tensors (rank 0)\n", static_cast<double>(device_peak_()) / kMiB);
  std::printf("loss         train %.4f (step %lld)", last_.loss, static_cast<long long>(last_.step));
  if (end.has_eval) {
    std::printf(", eval %.4f", end.eval.loss);
    if (end.eval.accuracy >= 0) std::printf(", accuracy %.4f", end.eval.accuracy);
  }
  std::printf("\n");
  if (!checkpoint_dir_.empty()) {
    const std::string last = end.last_checkpoint.empty() ? "" : " (last: " + end.last_checkpoint + ")";
    std::printf("checkpoints  %s%s\n", checkpoint_dir_.c_str(), last.c_str());
  }
  std::printf("metrics      %s%s%s\n", metrics_path_.c_str(), tb.empty() ? "" : ", TensorBoard: ", tb.c_str());

  std::ostringstream j;
  j << "{\"steps\": " << steps << ", \"start_step\": " << start_step_ << ", \"step\": " << end.step
    << ", \"tokens\": " << tokens << ", \"tokens_seen\": " << last_.tokens_seen << ", \"wall_s\": " << json_num(wall)
    << ", \"step_time_s\": " << json_num(step_seconds_) << ", \"tokens_per_s\": " << json_num(tps);
  if (u >= 0) j << ", \"mfu\": " << json_num(u);
  j << ", \"flops_per_token\": " << json_num(flops_per_token_) << ", \"peak_host_mib\": " << json_num(host_mib)
    << ", \"rss_peak_mib\": " << json_num(rss_mib) << ", \"train_loss\": " << json_num(last_.loss);
  if (device_peak_) j << ", \"peak_device_mib\": " << json_num(static_cast<double>(device_peak_()) / kMiB);
  if (end.has_eval) {
    j << ", \"eval_loss\": " << json_num(end.eval.loss);
    if (end.eval.accuracy >= 0) j << ", \"accuracy\": " << json_num(end.eval.accuracy);
  }
  j << ", \"stopped_by_signal\": " << (end.stopped_by_signal ? "true" : "false");
  if (!checkpoint_dir_.empty()) j << ", \"checkpoint_dir\": " << json_str(checkpoint_dir_);
  if (!end.last_checkpoint.empty()) j << ", \"last_checkpoint\": " << json_str(end.last_checkpoint);
  j << ", \"metrics\": " << json_str(metrics_path_);
  if (!tb.empty()) j << ", \"tensorboard\": " << json_str(tb);
  j << "}";
  const std::string line = "{\"summary\": " + j.str() + "}";
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  std::ofstream(out_dir_ + "/summary.json") << j.str() << '\n';
}

}  // namespace ringtrain
