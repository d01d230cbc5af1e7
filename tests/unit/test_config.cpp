// The strict YAML config: every rule of docs/CONFIG.md fed a bad file or a bad --set, checking
// that the error is an input error (exit 2) naming the key, the file, the line and the column
// (and the suggestion); round trips of dump_config; the shipped configs/*.yaml load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "src/config/config.h"
#include "src/config/config_table.h"
#include "src/config/suggest.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

namespace fs = std::filesystem;

// The message of the input error `fn` throws; a test failure if it throws nothing or a fault.
std::string input_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput) << "a fault where an input error belongs: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an input error, got none";
  return "";
}

std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return input_error_of([&] { parse_config(yaml, "cfg.yaml", overrides); });
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    EXPECT_NE(message.find(p), std::string::npos)
        << "message: " << message << "\n  lacks: " << p;
}

struct BadCase {
  const char* what;  // the rule it breaks
  std::string yaml;
  std::vector<std::string> overrides;
  std::vector<std::string> parts;  // each must appear in the message
};

void run_cases(const std::vector<BadCase>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    expect_contains(parse_error(c.yaml, c.overrides), c.parts);
  }
}

// A file in the temp directory, removed at the end of the test.
struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name, const std::string& content = "x") {
    path = fs::temp_directory_path() /
           ("ringtrain_test_config_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path) << content;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// Catches: defaults drifting from the header, an empty file rejected.
TEST(Config, EmptyFileGivesDefaults) {
  Config c = parse_config("", "empty.yaml");
  EXPECT_TRUE(same_settings(c, Config{}));
  EXPECT_EQ(c.source, "empty.yaml");
  Config d = parse_config("# only a comment\n", "c.yaml");
  EXPECT_TRUE(same_settings(d, Config{}));
}

// Catches: a wrong Llama FFN rule (rounding down, or rounding to 256).
TEST(Config, FfnDimLlamaRule) {
  ModelConfig m;
  m.d_model = 64;
  EXPECT_EQ(m.ffn_dim(), 192);  // int(512/3) = 170 -> 192
  m.d_model = 128;
  EXPECT_EQ(m.ffn_dim(), 352);  // 341 -> 352
  m.d_model = 96;
  EXPECT_EQ(m.ffn_dim(), 256);  // 256 exactly
  m.d_model = 4096;
  EXPECT_EQ(m.ffn_dim(), 10944);  // 10922 -> 10944
  m.d_ff = 100;
  EXPECT_EQ(m.ffn_dim(), 100);
}

// Catches: every key of the table being readable from a file and the value landing in the
// right member (a table row pointing at the wrong field).
TEST(Config, ReadsEveryKeyIntoItsMember) {
  Config c = parse_config(
      "device: cpu\n"
      "run: {name: r, out_dir: o, seed: 18446744073709551615, threads: 3}\n"
      "model: {vocab_size: 512, d_model: 96, n_layers: 3, n_heads: 6, n_kv_heads: 2, d_ff: 320,\n"
      "        rope_theta: 500000, norm_eps: 1.0e-6, tie_embeddings: true, init_std: 0.01}\n"
      "parallel: {dp: 2, cp: 2, tp: 2, cp_mode: ring, ulysses_degree: 1,\n"
      "           sequence_parallel: true, zero1: true}\n"
      "train: {seq_len: 128, micro_batch: 3, grad_accum: 4, steps: 7, lr: 0.5, min_lr: 0.25,\n"
      "        warmup_steps: 5, schedule: constant, weight_decay: 0.2, beta1: 0.8, beta2: 0.99,\n"
      "        eps: 1.0e-7, grad_clip: 0, precision: bf16, recompute: yes, eval_every: 3,\n"
      "        eval_batches: 9, on_nonfinite: skip}\n"
      "data: {task: recall, train: t.bin, val: v.bin, passkey_digits: 7,\n"
      "       passkey_min_depth: 0.25, passkey_max_depth: 0.75, recall_pairs: 16}\n"
      "checkpoint: {dir: ck, every: 50, keep: 2, resume: none}\n"
      "log: {every: 2, progress: never, tensorboard: off}\n",
      "all.yaml");
  EXPECT_EQ(c.device, DeviceChoice::kCpu);
  EXPECT_EQ(c.run.name, "r");
  EXPECT_EQ(c.run.out_dir, "o");
  EXPECT_EQ(c.run.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(c.run.threads, 3);
  EXPECT_EQ(c.model.vocab_size, 512);
  EXPECT_EQ(c.model.d_model, 96);
  EXPECT_EQ(c.model.n_layers, 3);
  EXPECT_EQ(c.model.n_heads, 6);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.model.d_ff, 320);
  EXPECT_EQ(c.model.rope_theta, 500000.0);
  EXPECT_EQ(c.model.norm_eps, 1e-6);
  EXPECT_TRUE(c.model.tie_embeddings);
  EXPECT_EQ(c.model.init_std, 0.01);
  EXPECT_EQ(c.parallel.dp, 2);
  EXPECT_EQ(c.parallel.cp, 2);
  EXPECT_EQ(c.parallel.tp, 2);
  EXPECT_EQ(c.parallel.cp_mode, CpMode::kRing);
  EXPECT_EQ(c.parallel.ulysses_degree, 1);
  EXPECT_TRUE(c.parallel.sequence_parallel);
  EXPECT_TRUE(c.parallel.zero1);
  EXPECT_EQ(c.parallel.zero, ZeroLevel::k1);  // zero1 is its synonym
  EXPECT_EQ(c.train.seq_len, 128);
  EXPECT_EQ(c.train.micro_batch, 3);
  EXPECT_EQ(c.train.grad_accum, 4);
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.train.lr, 0.5);
  EXPECT_EQ(c.train.min_lr, 0.25);
  EXPECT_EQ(c.train.warmup_steps, 5);
  EXPECT_EQ(c.train.schedule, LrSchedule::kConstant);
  EXPECT_EQ(c.train.weight_decay, 0.2);
  EXPECT_EQ(c.train.beta1, 0.8);
  EXPECT_EQ(c.train.beta2, 0.99);
  EXPECT_EQ(c.train.eps, 1e-7);
  EXPECT_EQ(c.train.grad_clip, 0.0);
  EXPECT_EQ(c.train.precision, TrainPrecision::kBf16);
  EXPECT_TRUE(c.train.recompute);
  EXPECT_EQ(c.train.eval_every, 3);
  EXPECT_EQ(c.train.eval_batches, 9);
  EXPECT_EQ(c.train.on_nonfinite, OnNonFinite::kSkip);
  EXPECT_EQ(c.data.task, Task::kRecall);
  EXPECT_EQ(c.data.train, "t.bin");
  EXPECT_EQ(c.data.val, "v.bin");
  EXPECT_EQ(c.data.passkey_digits, 7);
  EXPECT_EQ(c.data.passkey_min_depth, 0.25);
  EXPECT_EQ(c.data.passkey_max_depth, 0.75);
  EXPECT_EQ(c.data.recall_pairs, 16);
  EXPECT_EQ(c.checkpoint.dir, "ck");
  EXPECT_EQ(c.checkpoint.every, 50);
  EXPECT_EQ(c.checkpoint.keep, 2);
  EXPECT_EQ(c.checkpoint.resume, "none");
  EXPECT_EQ(c.log.every, 2);
  EXPECT_EQ(c.log.progress, Progress::kNever);
  EXPECT_FALSE(c.log.tensorboard);
}

// Catches: unknown keys silently ignored (a typo training with the default), and suggestions
// that point nowhere useful.
TEST(Config, UnknownKeysAreErrorsWithSuggestions) {
  run_cases({
      {"typo in a section", "train:\n  steps: 5\n  lrr: 0.1\n", {},
       {"unknown key 'train.lrr' in cfg.yaml line 3 column 3 (did you mean 'train.lr'?)"}},
      {"transposed letters", "model:\n  n_haeds: 4\n", {},
       {"unknown key 'model.n_haeds'", "line 2 column 3", "did you mean 'model.n_heads'?"}},
      {"misspelled section", "device: cpu\ntrian:\n  lr: 1\n", {},
       {"unknown key 'trian'", "line 2 column 1", "did you mean 'train'?"}},
      {"section key at the top level", "lr: 0.1\n", {},
       {"unknown key 'lr'", "line 1 column 1", "did you mean 'train.lr'?"}},
      {"key in the wrong section", "train:\n  dp: 2\n", {},
       {"unknown key 'train.dp'", "line 2 column 3", "did you mean 'parallel.dp'?"}},
      {"misspelled top-level key", "devcie: cpu\n", {},
       {"unknown key 'devcie'", "did you mean 'device'?"}},
      {"dotted key in the file", "train.lr: 0.1\n", {},
       {"'train.lr' must be nested in its section", "line 1 column 1"}},
  });
  // Nothing close: no suggestion rather than a random one.
  std::string m = parse_error("train:\n  completely_different: 1\n");
  expect_contains(m, {"unknown key 'train.completely_different'", "line 2 column 3"});
  EXPECT_EQ(m.find("did you mean"), std::string::npos) << m;
}

// Catches: a suggestion table out of step with the keys: every key, misspelled by one
// doubled letter, suggests itself.
TEST(Config, EveryKeyIsSuggestedForItsTypo) {
  for (const auto& f : config_fields()) {
    const std::string typo = f.key + f.key.back();
    const std::string yaml =
        f.section.empty() ? typo + ": 1\n" : f.section + ":\n  " + typo + ": 1\n";
    expect_contains(parse_error(yaml), {"did you mean '" + f.name() + "'?"});
  }
}

// Catches: wrong types accepted by lenient conversion (1.5 -> 1, "64" -> 64, maybe -> false),
// and type errors that do not say where.
TEST(Config, WrongTypesNameKeyLineAndColumn) {
  run_cases({
      {"word for int", "model:\n  d_model: abc\n", {},
       {"model.d_model expects an integer", "'abc'", "cfg.yaml line 2 column 12"}},
      {"fraction for int", "model:\n  d_model: 1.5\n", {},
       {"model.d_model expects an integer", "'1.5'", "line 2 column 12"}},
      {"quoted number for int", "model:\n  d_model: \"64\"\n", {},
       {"model.d_model expects an integer", "quoted", "line 2 column 12"}},
      {"exponent for int", "train:\n  steps: 1e3\n", {},
       {"train.steps expects an integer", "line 2 column 10"}},
      {"word for float", "train:\n  lr: fast\n", {},
       {"train.lr expects a number", "'fast'", "line 2 column 7"}},
      {"infinity for float", "train:\n  lr: .inf\n", {},
       {"train.lr expects a number", "line 2 column 7"}},
      {"word for bool", "train:\n  recompute: maybe\n", {},
       {"train.recompute expects true or false", "'maybe'", "line 2 column 14"}},
      {"number for bool", "parallel:\n  zero1: 2\n", {},
       {"parallel.zero1 expects true or false", "line 2 column 10"}},
      {"list for int", "model:\n  n_heads: [1, 2]\n", {},
       {"model.n_heads expects an integer, got a list", "line 2 column 12"}},
      {"map for int", "model:\n  n_heads:\n    a: 1\n", {},
       {"model.n_heads expects an integer, got a map", "line 3 column 5"}},
      {"missing value", "model:\n  n_heads:\n", {},
       {"model.n_heads expects an integer, got nothing", "line 2 column 3"}},
      {"negative seed", "run:\n  seed: -1\n", {},
       {"run.seed expects a non-negative integer", "line 2 column 9"}},
      {"int overflow", "model:\n  d_model: 99999999999\n", {},
       {"model.d_model", "does not fit a 32-bit integer", "line 2 column 12"}},
      {"list for string", "data:\n  train: [a, b]\n", {},
       {"data.train expects a string, got a list", "line 2 column 10"}},
      {"map for enum", "train:\n  precision: {a: 1}\n", {},
       {"train.precision expects one of fp32 | bf16, got a map", "line 2 column 14"}},
      {"section given a scalar", "train: 5\n", {},
       {"'train' is a section", "line 1 column 8"}},
      {"section given a list", "model:\n  - d_model\n", {},
       {"'model' is a section", "got a list", "line 2 column 3"}},
      {"top level not a map", "- a\n- b\n", {}, {"top level must be a map", "line 1 column 1"}},
      {"non-scalar key", "train:\n  ? [a, b]\n  : 1\n", {}, {"a key must be a plain name"}},
  });
}

// Catches: YAML's other spellings of booleans rejected although the docs promise them.
TEST(Config, YamlBooleanSpellings) {
  for (const char* t : {"true", "yes", "on", "True", "y"})
    EXPECT_TRUE(parse_config(std::string("train:\n  recompute: ") + t + "\n", "b.yaml").train.recompute) << t;
  for (const char* f : {"false", "no", "off", "False", "n"})
    EXPECT_FALSE(parse_config(std::string("parallel:\n  zero1: ") + f + "\n", "b.yaml").parallel.zero1) << f;
}

// Catches: values out of range reaching the trainer (a zero batch dividing by zero, a beta of
// 1 making Adam's bias correction divide by zero, a negative learning rate).
TEST(Config, OutOfRangeNamesKeyAndAllowedRange) {
  run_cases({
      {"negative lr", "train:\n  lr: -0.001\n", {},
       {"train.lr = -0.001 is out of range", ">= 0", "line 2 column 7"}},
      {"beta1 = 1", "train:\n  beta1: 1.0\n", {},
       {"train.beta1 = 1.0 is out of range", "[0, 1)", "line 2 column 10"}},
      {"negative beta2", "train:\n  beta2: -0.1\n", {},
       {"train.beta2", "[0, 1)", "line 2 column 10"}},
      {"zero d_model", "model:\n  d_model: 0\n", {}, {"model.d_model = 0", ">= 1", "line 2 column 12"}},
      {"negative heads", "model:\n  n_heads: -2\n", {}, {"model.n_heads = -2", ">= 1"}},
      {"zero micro_batch", "train:\n  micro_batch: 0\n", {},
       {"train.micro_batch = 0 is out of range", ">= 1", "line 2 column 16"}},
      {"zero grad_accum", "train:\n  grad_accum: 0\n", {}, {"train.grad_accum = 0", ">= 1"}},
      {"zero steps", "train:\n  steps: 0\n", {}, {"train.steps = 0", ">= 1"}},
      {"negative warmup", "train:\n  warmup_steps: -1\n", {}, {"train.warmup_steps", ">= 0"}},
      {"zero log.every", "log:\n  every: 0\n", {}, {"log.every = 0", ">= 1", "line 2 column 10"}},
      {"negative threads", "run:\n  threads: -1\n", {}, {"run.threads = -1", ">= 0"}},
      {"zero keep", "checkpoint:\n  keep: 0\n", {}, {"checkpoint.keep = 0", ">= 1"}},
      {"negative checkpoint.every", "checkpoint:\n  every: -5\n", {}, {"checkpoint.every", ">= 0"}},
      {"zero norm_eps", "model:\n  norm_eps: 0\n", {}, {"model.norm_eps = 0", "> 0"}},
      {"zero adam eps", "train:\n  eps: 0.0\n", {}, {"train.eps", "> 0"}},
      {"negative grad_clip", "train:\n  grad_clip: -1\n", {}, {"train.grad_clip", ">= 0"}},
      {"negative eval_every", "train:\n  eval_every: -1\n", {}, {"train.eval_every", ">= 0"}},
      {"zero eval_batches", "train:\n  eval_batches: 0\n", {}, {"train.eval_batches", ">= 1"}},
      {"depth above 1", "data:\n  passkey_min_depth: 1.5\n", {},
       {"data.passkey_min_depth", "[0, 1]", "line 2 column 22"}},
      {"zero dp", "parallel:\n  dp: 0\n", {}, {"parallel.dp = 0", ">= 1"}},
      {"zero cp", "parallel:\n  cp: 0\n", {}, {"parallel.cp = 0", ">= 1"}},
      {"zero tp", "parallel:\n  tp: 0\n", {}, {"parallel.tp = 0", ">= 1"}},
      {"negative d_ff", "model:\n  d_ff: -4\n", {}, {"model.d_ff", ">= 0"}},
      {"zero rope_theta", "model:\n  rope_theta: 0\n", {}, {"model.rope_theta", "> 0"}},
      {"empty run name", "run:\n  name: \"\"\n", {}, {"run.name must not be empty", "line 2 column 9"}},
      {"missing resume", "checkpoint:\n  resume:\n", {}, {"checkpoint.resume", "line 2 column 3"}},
  });
}

// Catches: enums compared loosely (fp16 running as fp32, a misspelled mode falling back to a
// default) and messages that do not list the allowed values.
TEST(Config, EnumsListTheirAllowedValues) {
  run_cases({
      {"device", "device: gpu\n", {},
       {"device = 'gpu' is not allowed", "auto | cpu | cuda", "line 1 column 9"}},
      {"cp_mode", "parallel:\n  cp_mode: zigzag\n", {},
       {"parallel.cp_mode = 'zigzag'", "ring | ulysses | hybrid", "line 2 column 12"}},
      {"precision", "train:\n  precision: fp16\n", {},
       {"train.precision = 'fp16'", "fp32 | bf16", "line 2 column 14"}},
      {"schedule", "train:\n  schedule: linear\n", {}, {"train.schedule", "cosine | constant"}},
      {"task", "data:\n  task: qa\n", {}, {"data.task = 'qa'", "text | passkey | recall"}},
      {"on_nonfinite", "train:\n  on_nonfinite: ignore\n", {}, {"train.on_nonfinite", "stop | skip"}},
      {"progress", "log:\n  progress: sometimes\n", {}, {"log.progress", "auto | always | never"}},
      {"case matters", "device: CPU\n", {}, {"device = 'CPU'", "auto | cpu | cuda"}},
  });
}

// Catches: YAML's own silent behaviours (a repeated key keeping one value, a second document
// ignored) and syntax errors without a position.
TEST(Config, DuplicatesSyntaxErrorsAndDocuments) {
  run_cases({
      {"duplicate key", "train:\n  lr: 1\n  lr: 2\n", {},
       {"duplicate key 'train.lr'", "line 3 column 3", "first at cfg.yaml line 2"}},
      {"duplicate section", "train:\n  lr: 1\ntrain:\n  steps: 2\n", {},
       {"duplicate section 'train'", "line 3 column 1"}},
      {"duplicate device", "device: cpu\ndevice: cuda\n", {}, {"duplicate key 'device'", "line 2"}},
      {"syntax error", "train:\n  lr: [1\n", {}, {"invalid YAML", "cfg.yaml line"}},
      {"bad indentation", "train:\n  lr: 1\n   steps: 2\n", {}, {"invalid YAML", "line"}},
      {"two documents", "train:\n  lr: 1\n---\ntrain:\n  lr: 2\n", {},
       {"cfg.yaml", "2 YAML documents"}},
  });
}

// Catches: the Ulysses degree still capped by the kv heads (it may exceed them: members receive
// the kv heads their query heads read), and a negative sliding window accepted.
TEST(Config, UlyssesBeyondKvHeadsAndWindow) {
  const Config c = parse_config("model:\n  n_heads: 4\n  n_kv_heads: 2\n  sliding_window: 100000\n"
                                "parallel:\n  cp: 4\n  cp_mode: ulysses\n",
                                "cfg.yaml");
  EXPECT_EQ(c.parallel.ulysses_degree, 4);
  EXPECT_EQ(c.model.sliding_window, 100000);  // larger than seq_len: it covers everything
  run_cases({{"negative window", "model:\n  sliding_window: -1\n", {}, {"model.sliding_window", "-1"}}});
}

// Catches: each cross-field rule being skipped, so the failure would come later
// as a crash, a hang or silently wrong attention.
TEST(Config, CrossFieldRules) {
  const std::string heads = "model:\n  n_heads: 6\n  n_kv_heads: 6\n  d_model: 96\n";
  run_cases({
      {"heads % tp", heads + "parallel:\n  tp: 4\n", {},
       {"model.n_heads = 6 (cfg.yaml line 2 column 12)", "parallel.tp = 4 (cfg.yaml line 6 column 7)",
        "tensor-parallel"}},
      {"kv heads % tp", "model:\n  n_heads: 4\n  n_kv_heads: 1\nparallel:\n  tp: 2\n", {},
       {"model.n_kv_heads = 1 (cfg.yaml line 3 column 15)", "parallel.tp = 2 (cfg.yaml line 5 column 7)"}},
      {"heads % kv heads", "model:\n  n_heads: 4\n  n_kv_heads: 3\n", {},
       {"model.n_heads = 4 (cfg.yaml line 2 column 12)", "model.n_kv_heads = 3 (cfg.yaml line 3 column 15)",
        "grouped-query"}},
      {"d_model % heads", "model:\n  d_model: 64\n  n_heads: 3\n  n_kv_heads: 3\n", {},
       {"model.d_model = 64 (cfg.yaml line 2 column 12)", "model.n_heads = 3 (cfg.yaml line 3 column 12)"}},
      {"odd head dim", "model:\n  d_model: 12\n  n_heads: 4\n", {},
       {"head dimension", "= 3", "must be even", "RoPE", "model.d_model = 12 (cfg.yaml line 2 column 12)"}},
      {"llama3 without the original context", "model:\n  rope_scaling: llama3\n  rope_factor: 8\n", {},
       {"model.rope_original_max_position_embeddings = 0", "model.rope_scaling = llama3 (cfg.yaml line 2 column 17)"}},
      {"yarn without the original context", "model:\n  rope_scaling: yarn\n", {},
       {"model.rope_original_max_position_embeddings = 0", "pretraining context"}},
      {"llama3 band upside down",
       "model:\n  rope_scaling: llama3\n  rope_original_max_position_embeddings: 512\n  rope_low_freq_factor: 4\n"
       "  rope_high_freq_factor: 2\n", {},
       {"model.rope_high_freq_factor = 2 (cfg.yaml line 5 column 26)", "model.rope_low_freq_factor = 4"}},
      {"seq_len % 2cp", "parallel:\n  cp: 4\ntrain:\n  seq_len: 100\n", {},
       {"train.seq_len = 100 (cfg.yaml line 4 column 12)", "2 * parallel.cp = 8",
        "parallel.cp = 4 (cfg.yaml line 2 column 7)", "zigzag"}},
      {"seq_len % 2cp, cp odd", "parallel:\n  cp: 3\ntrain:\n  seq_len: 100\n", {},
       {"train.seq_len = 100", "2 * parallel.cp = 6", "zigzag"}},
      {"vocab % tp", "model:\n  vocab_size: 257\nparallel:\n  tp: 2\n", {},
       {"model.vocab_size = 257 (cfg.yaml line 2 column 15)", "parallel.tp = 2", "vocab"}},
      {"ffn % tp", "model:\n  d_ff: 33\nparallel:\n  tp: 2\n", {},
       {"MLP hidden size 33", "model.d_ff = 33 (cfg.yaml line 2 column 9)", "parallel.tp = 2"}},
      {"ring with a ulysses degree", "parallel:\n  cp: 2\n  ulysses_degree: 2\n", {},
       {"parallel.ulysses_degree = 2 (cfg.yaml line 3 column 19)", "parallel.cp_mode = ring (default)"}},
      {"ulysses degree not cp", "parallel:\n  cp: 4\n  cp_mode: ulysses\n  ulysses_degree: 2\n", {},
       {"parallel.ulysses_degree = 2 (cfg.yaml line 4 column 19)", "parallel.cp = 4", "hybrid"}},
      {"hybrid degree = cp", "parallel:\n  cp: 4\n  cp_mode: hybrid\n  ulysses_degree: 4\n", {},
       {"parallel.ulysses_degree = 4 (cfg.yaml line 4 column 19)", "< cp and divide"}},
      {"hybrid degree 1", "parallel:\n  cp: 4\n  cp_mode: hybrid\n", {},
       {"parallel.ulysses_degree = 1 (default)", "must be > 1"}},
      {"hybrid degree does not divide cp", "model:\n  n_heads: 6\n  n_kv_heads: 6\n  d_model: 96\n"
       "parallel:\n  cp: 4\n  cp_mode: hybrid\n  ulysses_degree: 3\ntrain:\n  seq_len: 96\n", {},
       {"parallel.ulysses_degree = 3", "divide parallel.cp = 4"}},
      {"ulysses degree divides heads", "model:\n  n_heads: 4\n  n_kv_heads: 4\n"
       "parallel:\n  cp: 8\n  cp_mode: ulysses\n", {},
       {"Ulysses degree parallel.ulysses_degree = 8", "n_heads / parallel.tp = 4 / 1 = 4"}},
      {"ulysses degree divides heads per tp rank", "model:\n  n_heads: 8\n  n_kv_heads: 8\n"
       "parallel:\n  cp: 4\n  tp: 4\n  cp_mode: ulysses\n", {},
       {"n_heads / parallel.tp = 8 / 4 = 2"}},
      {"sequence parallel split", "model:\n  d_model: 128\nparallel:\n  cp: 2\n  tp: 4\n"
       "  sequence_parallel: true\ntrain:\n  seq_len: 68\n", {},
       {"sequence_parallel", "34 tokens", "parallel.tp = 4"}},
      {"min_lr above lr", "train:\n  lr: 0.001\n  min_lr: 0.01\n", {},
       {"train.min_lr = 0.01 (cfg.yaml line 3 column 11)", "train.lr = 0.001 (cfg.yaml line 2 column 7)"}},
      {"passkey depths", "data:\n  passkey_min_depth: 0.8\n  passkey_max_depth: 0.2\n", {},
       {"data.passkey_min_depth = 0.8 (cfg.yaml line 2 column 22)", "data.passkey_max_depth = 0.2"}},
      {"passkey prompt too short", "train:\n  seq_len: 32\n", {},
       {"train.seq_len = 32 (cfg.yaml line 2 column 12)", "too short", "data.task = passkey (default)",
        "64"}},
      {"recall prompt too short", "data:\n  task: recall\ntrain:\n  seq_len: 16\n", {},
       {"train.seq_len = 16", "data.task = recall (cfg.yaml line 2 column 9)"}},
      {"text without train", "data:\n  task: text\n", {},
       {"data.train", "required", "data.task = text (cfg.yaml line 2 column 9)"}},
      {"missing train file", "data:\n  task: text\n  train: /nonexistent/ringtrain/train.bin\n", {},
       {"data.train = /nonexistent/ringtrain/train.bin (cfg.yaml line 3 column 10)", "does not exist"}},
      {"missing resume file", "checkpoint:\n  resume: /nonexistent/ringtrain/ck.h5\n", {},
       {"checkpoint.resume = /nonexistent/ringtrain/ck.h5 (cfg.yaml line 2 column 11)",
        "does not exist"}},
  });
}

// Catches: the Ulysses degree left at 1 in ulysses mode (the mesh would build a pure ring) and
// valid layouts rejected.
TEST(Config, ValidParallelLayoutsResolve) {
  Config u = parse_config("parallel:\n  cp: 4\n  cp_mode: ulysses\n", "u.yaml");
  EXPECT_EQ(u.parallel.ulysses_degree, 4);
  Config u4 = parse_config("parallel:\n  cp: 4\n  cp_mode: ulysses\n  ulysses_degree: 4\n", "u.yaml");
  EXPECT_EQ(u4.parallel.ulysses_degree, 4);
  Config h = parse_config("parallel:\n  cp: 4\n  cp_mode: hybrid\n  ulysses_degree: 2\n", "h.yaml");
  EXPECT_EQ(h.parallel.ulysses_degree, 2);
  Config t = parse_config("model:\n  n_heads: 4\n  n_kv_heads: 2\nparallel:\n  tp: 2\n  cp: 2\n"
                          "  dp: 2\n",
                          "t.yaml");
  EXPECT_EQ(t.parallel.tp * t.parallel.cp * t.parallel.dp, 8);
  // The resolved degree survives a round trip (dump says 4, not 1).
  Config again = parse_config(dump_config(u), "again.yaml");
  EXPECT_TRUE(same_settings(u, again));
}

// Catches: parallel.zero levels read as another level, the zero1 synonym lost or silently
// overriding an explicit level, unknown levels accepted, the level in effect not falling to 0 where dp x cp = 1 shards nothing.
TEST(Config, ZeroLevels) {
  for (int level : {0, 1, 2, 3}) {
    const Config c = parse_config("parallel:\n  zero: " + std::to_string(level) + "\n  dp: 2\n", "z.yaml");
    EXPECT_EQ(static_cast<int>(c.parallel.zero), level);
    EXPECT_EQ(c.parallel.zero_level(), level);
    EXPECT_TRUE(same_settings(c, parse_config(dump_config(c), "again.yaml")));
  }
  EXPECT_EQ(parse_config("parallel:\n  zero1: true\n  cp: 2\n", "z.yaml").parallel.zero_level(), 1);
  EXPECT_EQ(parse_config("parallel:\n  zero1: true\n  zero: 1\n", "z.yaml").parallel.zero, ZeroLevel::k1);
  EXPECT_EQ(parse_config("parallel:\n  zero: 2\n", "z.yaml").parallel.zero_level(), 0);  // one rank
  run_cases({
      {"unknown level", "parallel:\n  zero: 4\n", {},
       {"parallel.zero = '4' is not allowed", "0 | 1 | 2 | 3", "line 2 column 9"}},
      {"word level", "parallel:\n  zero: full\n", {}, {"parallel.zero = 'full' is not allowed"}},
      {"zero1 against another level", "parallel:\n  zero: 2\n  zero1: true\n", {},
       {"parallel.zero1 = true", "means parallel.zero: 1", "parallel.zero = 2 (cfg.yaml line 2"}},
  });
}

// Catches: paths checked for the wrong task (a passkey run refusing a missing corpus), val not
// checked when set, and the path checks not being switchable for checkpoint configs.
TEST(Config, PathsThatMustExist) {
  TempFile train("train.bin");
  const std::string text = "data:\n  task: text\n  train: " + train.path.string() + "\n";
  EXPECT_NO_THROW(parse_config(text, "t.yaml"));
  expect_contains(parse_error(text + "  val: /nonexistent/ringtrain/val.bin\n"),
                  {"data.val = /nonexistent/ringtrain/val.bin (cfg.yaml line 4 column 8)", "does not exist"});
  // The same missing files are fine when the task does not read them.
  EXPECT_NO_THROW(parse_config("data:\n  task: passkey\n  train: /nonexistent/a.bin\n  val: /nonexistent/b.bin\n",
                               "p.yaml"));
  // A config read back from a checkpoint may skip the existence checks.
  ConfigChecks no_paths;
  no_paths.paths = false;
  EXPECT_NO_THROW(parse_config("data:\n  task: text\n  train: /nonexistent/a.bin\ncheckpoint:\n"
                               "  resume: /nonexistent/ck.h5\n",
                               "ck.yaml", {}, no_paths));
  // data.train is still required without path checks.
  expect_contains(input_error_of([&] { parse_config("data:\n  task: text\n", "ck.yaml", {}, no_paths); }),
                  {"data.train", "required"});
  TempFile ck("ck.h5");
  EXPECT_EQ(parse_config("checkpoint:\n  resume: " + ck.path.string() + "\n", "r.yaml").checkpoint.resume,
            ck.path.string());
}

// Catches: a world size that does not match the layout (ranks left out of the mesh or a
// reshape that hangs).
TEST(Config, WorldSizeMustMatchLayout) {
  Config c = parse_config("model:\n  n_heads: 4\n  n_kv_heads: 2\nparallel:\n  cp: 2\n  tp: 2\n",
                          "w.yaml");
  std::string m = input_error_of([&] { validate_for_world(c, 8); });
  expect_contains(m, {"parallel: dp*cp*tp = 1*2*2 = 4 but the job has 8 ranks", "mpirun -np 4",
                      "w.yaml"});
  expect_contains(input_error_of([&] { validate_for_world(c, 1); }), {"= 4 but the job has 1 rank"});
  EXPECT_NO_THROW(validate_for_world(c, 4));
}

// Catches: overrides parsed as plain strings (types not like YAML), applied before the file,
// or bad ones reported without naming the override.
TEST(Config, SetOverrides) {
  const std::string file = "train:\n  lr: 0.01\n  min_lr: 0.0\n";
  Config c = parse_config(file, "o.yaml",
                          {"train.lr=3e-4", "device=cuda", "data.val=", "train.recompute=true",
                           "run.name=a run", "train.steps=5", "train.steps=7"});
  EXPECT_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.device, DeviceChoice::kCuda);
  EXPECT_EQ(c.data.val, "");
  EXPECT_TRUE(c.train.recompute);
  EXPECT_EQ(c.run.name, "a run");
  EXPECT_EQ(c.train.steps, 7);  // the last one wins
  run_cases({
      {"wrong type", file, {"train.lr=abc"},
       {"--set train.lr=abc: ", "train.lr expects a number", "'abc'"}},
      {"no equals sign", file, {"trainlr"}, {"--set trainlr: ", "section.key=value"}},
      {"empty key", file, {"=5"}, {"--set =5: ", "section.key=value"}},
      {"unknown key", file, {"train.lrr=1"},
       {"--set train.lrr=1: ", "unknown key 'train.lrr'", "did you mean 'train.lr'?"}},
      {"unknown section", file, {"trian.lr=1"}, {"--set trian.lr=1: ", "did you mean 'train.lr'?"}},
      {"bare key", file, {"lr=1"}, {"--set lr=1: ", "did you mean 'train.lr'?"}},
      {"a section", file, {"train=5"}, {"--set train=5: ", "'train' is a section", "train.seq_len"}},
      {"out of range", file, {"train.beta1=1.5"}, {"--set train.beta1=1.5: ", "[0, 1)"}},
      {"bad enum", file, {"parallel.cp_mode=ringg"}, {"--set parallel.cp_mode=ringg: ", "ring | ulysses | hybrid"}},
      {"not YAML", file, {"train.lr=[1"}, {"--set train.lr=[1: ", "not valid YAML"}},
      {"list value", file, {"model.n_heads=[1,2]"}, {"--set model.n_heads=[1,2]: ", "got a list"}},
      {"cross-field names the override", file,
       {"parallel.tp=4", "model.n_heads=6", "model.n_kv_heads=6", "model.d_model=96"},
       {"model.n_heads = 6 (--set model.n_heads=6)", "parallel.tp = 4 (--set parallel.tp=4)"}},
  });
}

// Catches: a key settable in the file but not by --set (or the reverse), and dump writing a
// value the parser will not take back.
TEST(Config, EveryKeyRoundTripsThroughSet) {
  const Config defaults;
  for (const auto& f : config_fields()) {
    SCOPED_TRACE(f.name());
    const std::string value = config_field_text(defaults, f);
    Config c;
    EXPECT_NO_THROW(c = parse_config("", "s.yaml", {f.name() + "=" + value}));
    EXPECT_TRUE(same_settings(c, defaults));
  }
}

void expect_round_trip(const Config& c) {
  const std::string dump = dump_config(c);
  ConfigChecks no_paths;
  no_paths.paths = false;
  Config back = parse_config(dump, "dump.yaml", {}, no_paths);
  EXPECT_TRUE(same_settings(c, back)) << dump << "\n---- reads back as ----\n" << dump_config(back);
  EXPECT_EQ(dump, dump_config(back));
}

// Catches: dump losing precision (a learning rate of 1/3 coming back different after resume),
// strings that need quoting written bare, keys missing from the dump.
TEST(Config, DumpRoundTrips) {
  expect_round_trip(Config{});
  Config c;
  c.run.name = "null";
  c.run.out_dir = "runs/a: b #c";
  c.data.train = "yes";
  c.data.val = "it's \"quoted\" \\ naïve";
  c.checkpoint.dir = "  spaced  ";
  c.run.seed = std::numeric_limits<uint64_t>::max();
  c.train.lr = 1.0 / 3.0;
  c.train.min_lr = 1e-300;
  c.model.rope_theta = 123456789.123456789;
  c.model.norm_eps = 5e-324;  // the smallest subnormal
  c.train.beta2 = 0.999999999999;
  c.model.tie_embeddings = true;
  expect_round_trip(c);

  // Every key appears in the dump, in its section.
  const std::string dump = dump_config(Config{});
  for (const auto& f : config_fields())
    EXPECT_NE(dump.find((f.section.empty() ? "" : "  ") + f.key + ": "), std::string::npos) << f.name();

  // Random values for the keys without cross-field constraints.
  const unsigned seed = 20261128;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int i = 0; i < 200; ++i) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " iteration " + std::to_string(i));
    Config r;
    r.model.rope_theta = std::exp(u(rng) * 30.0);
    r.model.norm_eps = std::exp(-u(rng) * 40.0);
    r.model.init_std = u(rng) + 1e-9;
    r.train.beta1 = u(rng) * 0.999;
    r.train.beta2 = u(rng) * 0.999;
    r.train.weight_decay = u(rng) * 10;
    r.train.grad_clip = u(rng) * 100;
    r.train.eps = std::exp(-u(rng) * 40.0);
    r.train.lr = u(rng);
    r.train.min_lr = r.train.lr * u(rng);
    r.run.seed = rng();
    expect_round_trip(r);
  }
}

std::string source_dir() {
  const char* d = std::getenv("RINGTRAIN_SOURCE_DIR");
  return d ? d : "";
}

// Catches: a shipped config that no longer loads after a key was renamed or a rule added.
TEST(Config, ShippedConfigsLoad) {
  if (source_dir().empty()) GTEST_SKIP() << "RINGTRAIN_SOURCE_DIR is not set (ctest sets it)";
  const fs::path dir = fs::path(source_dir()) / "configs";
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++n;
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    // Every rule but the existence of token files (scripts/get-data makes those).
    ConfigChecks no_paths;
    no_paths.paths = false;
    Config c;
    EXPECT_NO_THROW(c = parse_config(text.str(), entry.path().string(), {}, no_paths));
    expect_round_trip(c);
  }
  EXPECT_GE(n, 2);
}

// Catches: the test config drifting from what the tests assume.
TEST(Config, TestTinyConfig) {
  if (source_dir().empty()) GTEST_SKIP() << "RINGTRAIN_SOURCE_DIR is not set (ctest sets it)";
  const std::string path = source_dir() + "/configs/test-tiny.yaml";
  Config c = load_config(path);
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.model.vocab_size, 256);
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.n_layers, 2);
  EXPECT_EQ(c.model.n_heads, 4);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.model.ffn_dim(), 192);
  EXPECT_EQ(c.train.seq_len, 64);
  EXPECT_EQ(c.train.steps, 20);
  EXPECT_EQ(c.data.task, Task::kPasskey);
  // The layouts the tests use load from it with --set.
  EXPECT_NO_THROW(load_config(path, {"parallel.cp=2", "parallel.tp=2"}));
  EXPECT_NO_THROW(load_config(path, {"parallel.cp=2", "parallel.cp_mode=ulysses"}));
  EXPECT_NO_THROW(load_config(path, {"parallel.cp=4", "parallel.cp_mode=hybrid", "parallel.ulysses_degree=2"}));
}

// Catches: the text config broken in anything but its (not yet downloaded) token files.
TEST(Config, TextSmallConfigLoadsAsPasskey) {
  if (source_dir().empty()) GTEST_SKIP() << "RINGTRAIN_SOURCE_DIR is not set (ctest sets it)";
  const std::string path = source_dir() + "/configs/text-small.yaml";
  Config c = load_config(path, {"data.task=passkey"});
  EXPECT_EQ(c.data.train, "data/corpus/train.bin");
  EXPECT_EQ(c.data.val, "data/corpus/train.val.bin");
  EXPECT_NO_THROW(load_config(path, {"data.task=passkey", "parallel.cp=2", "parallel.tp=2"}));
}

// Catches: a missing config file reported as a YAML or internal error.
TEST(Config, LoadConfigFileErrors) {
  expect_contains(input_error_of([] { load_config("/nonexistent/ringtrain.yaml"); }),
                  {"/nonexistent/ringtrain.yaml", "does not exist"});
  expect_contains(input_error_of([] { load_config(fs::temp_directory_path().string()); }),
                  {"is a directory"});
  TempFile bad("bad.yaml", "train:\n  lrr: 1\n");
  expect_contains(input_error_of([&] { load_config(bad.path.string()); }),
                  {"unknown key 'train.lrr' in " + bad.path.string() + " line 2 column 3"});
}

// Catches: docs/CONFIG.md out of step with the table (a key added without documentation).
// RINGTRAIN_UPDATE_DOCS=1 rewrites the generated part instead.
TEST(Config, DocsListEveryKey) {
  if (source_dir().empty()) GTEST_SKIP() << "RINGTRAIN_SOURCE_DIR is not set (ctest sets it)";
  const fs::path doc = fs::path(source_dir()) / "docs" / "CONFIG.md";
  std::ifstream in(doc);
  ASSERT_TRUE(in) << doc;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const std::string begin = "<!-- BEGIN KEYS: generated from src/config/config_table.cpp -->\n";
  const std::string end = "<!-- END KEYS -->";
  const auto b = text.find(begin), e = text.find(end);
  ASSERT_NE(b, std::string::npos) << "CONFIG.md lacks " << begin;
  ASSERT_NE(e, std::string::npos) << "CONFIG.md lacks " << end;
  const std::string generated = config_reference_markdown();
  const std::string current = text.substr(b + begin.size(), e - b - begin.size());
  const char* update = std::getenv("RINGTRAIN_UPDATE_DOCS");
  if (update && std::string(update) == "1" && current != generated) {
    text = text.substr(0, b + begin.size()) + generated + text.substr(e);
    std::ofstream(doc) << text;
    return;
  }
  // One row per key: the generated table is complete by construction, so equality suffices.
  EXPECT_TRUE(current == generated) << "docs/CONFIG.md is stale: rerun test_config with "
                                       "RINGTRAIN_UPDATE_DOCS=1 to regenerate its key tables";
}

// Catches: a broken edit distance (transpositions costing 2, so "trian" is not near "train").
TEST(Suggest, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("train", "trian"), 1u);
  EXPECT_EQ(edit_distance("lr", "lrr"), 1u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(nearest_match("trian", {"eval", "train"}), "train");
  EXPECT_EQ(nearest_match("xyz", {"train", "eval"}), "");
  EXPECT_EQ(nearest_match("lr", {"dp"}), "");  // two edits is no typo of a 2-letter word
  EXPECT_EQ(did_you_mean("evl", {"eval"}), " (did you mean 'eval'?)");
}

}  // namespace
}  // namespace ringtrain
