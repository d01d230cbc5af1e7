// The run configuration: one YAML file with sections run / model / parallel / train / data /
// checkpoint / log (docs/CONFIG.md lists every key). Loading is strict: unknown keys, wrong
// types, out-of-range values and broken cross-field rules are input errors naming the key.
#pragma once

#include <cstdint>
#include <ostream>
#include <type_traits>
#include <string>
#include <vector>

namespace ringtrain {

// The choices of the config, typed when the config is parsed (the key table binds each choice
// key to its enum; the enumerators are in the order of the key's allowed values, which
// to_string gives back as the YAML word).
enum class DeviceChoice { kAuto, kCpu, kCuda };
enum class CpMode { kRing, kUlysses, kHybrid };
enum class DeviceComm { kAuto, kNccl, kStaged };
enum class LrSchedule { kCosine, kConstant };
enum class TrainPrecision { kFp32, kBf16 };
enum class OnNonFinite { kStop, kSkip };
enum class Task { kText, kPasskey, kRecall };
enum class LossTargets { kAll, kAnswer };
enum class Packing { kNone, kDocuments };
enum class DataFormat { kRingtrain, kMegatron };
enum class Progress { kAuto, kAlways, kNever };
enum class RopeScalingType { kNone, kLinear, kLlama3, kYarn };
// What is sharded over the dp x cp ranks (which hold the same parameters): nothing; AdamW
// moments and master weights; also gradients; also parameters.
enum class ZeroLevel { k0, k1, k2, k3 };

std::string to_string(DeviceChoice v);
std::string to_string(CpMode v);
std::string to_string(DeviceComm v);
std::string to_string(LrSchedule v);
std::string to_string(TrainPrecision v);
std::string to_string(OnNonFinite v);
std::string to_string(Task v);
std::string to_string(LossTargets v);
std::string to_string(Packing v);
std::string to_string(DataFormat v);
std::string to_string(Progress v);
std::string to_string(RopeScalingType v);
// Messages print a choice as its word.
template <typename E>
  requires std::is_enum_v<E> && requires(E e) { to_string(e); }
std::ostream& operator<<(std::ostream& os, E e) {
  return os << to_string(e);
}

struct RunConfig {
  std::string name = "ringtrain";
  std::string out_dir = "runs/ringtrain";
  uint64_t seed = 1234;
  int threads = 0;  // CPU threads per rank; 0 = cores of the node / ranks on the node
};

struct ModelConfig {
  int vocab_size = 256;
  int d_model = 128;
  int n_layers = 2;
  int n_heads = 4;
  int n_kv_heads = 4;
  int d_ff = 0;  // 0: the Llama rule, 8/3 * d_model rounded up to a multiple of 32
  double rope_theta = 10000.0;
  // RoPE scaling as transformers' rope_parameters (kernels/rope.h): none | linear | llama3 | yarn
  RopeScalingType rope_scaling = RopeScalingType::kNone;
  double rope_factor = 1.0;
  int rope_original_max_position_embeddings = 0;  // llama3, yarn
  double rope_low_freq_factor = 1.0;              // llama3
  double rope_high_freq_factor = 4.0;             // llama3
  double rope_beta_fast = 32.0;                   // yarn
  double rope_beta_slow = 1.0;                    // yarn
  double rope_attention_factor = 0.0;             // yarn; 0: 0.1 ln(factor) + 1
  bool rope_truncate = true;                      // yarn
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  double init_std = 0.02;
  int sliding_window = 0;  // 0: off; W: a query sees the W latest keys of its document (Mistral)
  int head_dim() const { return d_model / n_heads; }
  int ffn_dim() const;  // d_ff with the default applied
};

struct ParallelConfig {
  int dp = 1;
  int cp = 1;
  int tp = 1;
  CpMode cp_mode = CpMode::kRing;
  int ulysses_degree = 1;        // hybrid: cp = ulysses_degree x ring; ulysses mode: = cp
  bool sequence_parallel = false;
  ZeroLevel zero = ZeroLevel::k0;
  bool zero1 = false;  // synonym of zero: 1 (resolved into `zero`)
  bool zero3_keep_for_backward = false;  // zero 3: each layer's gathered weights kept for its backward
  DeviceComm device_comm = DeviceComm::kAuto;  // device: cuda
  // The level in effect: sharding needs more than one rank in dp x cp.
  int zero_level() const { return dp * cp > 1 ? static_cast<int>(zero) : 0; }
};

struct TrainConfig {
  int seq_len = 256;
  int micro_batch = 1;
  int grad_accum = 1;
  int steps = 100;
  double lr = 1e-3;
  double min_lr = 1e-4;
  int warmup_steps = 10;
  LrSchedule schedule = LrSchedule::kCosine;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0 disables clipping
  TrainPrecision precision = TrainPrecision::kFp32;
  bool recompute = false;
  int eval_every = 0;  // 0: evaluate only at the end
  int eval_batches = 4;
  OnNonFinite on_nonfinite = OnNonFinite::kStop;
};

struct DataConfig {
  Task task = Task::kPasskey;
  std::string train;             // token file (task: text)
  std::string val;               // token file (task: text); empty: a held-out slice of train
  std::string prompt_tokens;     // the prompts' words as tokens (JSON); empty: byte-level
  DataFormat format = DataFormat::kRingtrain;  // of train and val: token files or Megatron pairs
  int passkey_digits = 5;
  double passkey_min_depth = 0.0;  // where the key may sit, as a fraction of the prompt
  double passkey_max_depth = 1.0;
  int recall_pairs = 8;
  LossTargets loss = LossTargets::kAll;  // which targets the loss scores (synthetic tasks)
  Packing packing = Packing::kNone;  // documents: samples hold whole documents, masked apart
};

struct CheckpointConfig {
  std::string dir;  // empty: no checkpoints
  int every = 0;    // steps; 0: only at the end and on SIGTERM/SIGUSR1
  int keep = 3;
  std::string resume = "auto";  // auto | none | PATH
  std::string init_from;        // PATH: a new run from its weights (step 0, fresh optimizer)
};

struct LogConfig {
  int every = 10;
  Progress progress = Progress::kAuto;  // the live line on a terminal
  bool tensorboard = true;
  double peak_tflops = 0.0;  // per device, for MFU; 0: unknown (MFU not reported)
};

struct Config {
  DeviceChoice device = DeviceChoice::kAuto;
  RunConfig run;
  ModelConfig model;
  ParallelConfig parallel;
  TrainConfig train;
  DataConfig data;
  CheckpointConfig checkpoint;
  LogConfig log;
  std::string source;  // the file it was read from (for messages)
};

// Parses YAML text (for tests, checkpoints and fuzzing); `name` is used in messages.
Config parse_config(const std::string& yaml_text, const std::string& name,
                    const std::vector<std::string>& overrides = {});
// What parse_config checks beyond the text itself. A config read back from a checkpoint (or
// inspected or planned on another machine) may name files that are not there: paths = false
// skips the existence checks of data.train, data.val, data.prompt_tokens, checkpoint.resume and
// checkpoint.init_from.
struct ConfigChecks {
  bool paths = true;
};
Config parse_config(const std::string& yaml_text, const std::string& name,
                    const std::vector<std::string>& overrides, const ConfigChecks& checks);
// Reads `path`, applies `overrides` ("section.key=value", typed like YAML), checks every key,
// type, range and the single-file rules. Throws an input error naming key, file, line, column.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   const ConfigChecks& checks = {});
// Cross-field rules that need the world size (dp*cp*tp == world_size, ...).
void validate_for_world(const Config& config, int world_size);
// The resolved config (every key, defaults filled in) as YAML text; parse_config(dump(c))
// gives back c.
std::string dump_config(const Config& config);

}  // namespace ringtrain
