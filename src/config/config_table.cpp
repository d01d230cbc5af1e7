#include "src/config/config_table.h"

#include <charconv>
#include <cstdint>
#include <sstream>
#include <type_traits>

#include <yaml-cpp/yaml.h>

#include "src/core/error.h"

namespace ringtrain {
namespace {

template <typename T>
constexpr FieldType type_of() {
  if constexpr (std::is_same_v<T, int>) return FieldType::kInt;
  else if constexpr (std::is_same_v<T, uint64_t>) return FieldType::kU64;
  else if constexpr (std::is_same_v<T, double>) return FieldType::kDouble;
  else if constexpr (std::is_same_v<T, bool>) return FieldType::kBool;
  else {
    static_assert(std::is_same_v<T, std::string>, "unsupported config field type");
    return FieldType::kString;
  }
}

// A key of a section: `field("train", "lr", &Config::train, &TrainConfig::lr, ...)`.
template <typename S, typename T>
ConfigField field(const char* section, const char* key, S Config::*sec, T S::*member,
                  FieldRange range, const char* doc) {
  ConfigField f;
  f.section = section;
  f.key = key;
  f.type = type_of<T>();
  f.ref = [sec, member](Config& c) -> void* { return &((c.*sec).*member); };
  f.range = range;
  f.doc = doc;
  return f;
}

// A choice key bound to its enum: `choices` name the enumerators in order (the member is
// read and written as its int value, the index into `choices`).
template <typename S, typename E>
ConfigField choice(const char* section, const char* key, S Config::*sec, E S::*member,
                   std::vector<std::string> choices, const char* doc) {
  static_assert(std::is_enum_v<E> && std::is_same_v<std::underlying_type_t<E>, int>);
  ConfigField f;
  f.section = section;
  f.key = key;
  f.type = FieldType::kChoice;
  f.ref = [sec, member](Config& c) -> void* { return &((c.*sec).*member); };
  f.choices = std::move(choices);
  f.doc = doc;
  return f;
}

template <typename S>
ConfigField text(const char* section, const char* key, S Config::*sec, std::string S::*member,
                 bool non_empty, const char* doc) {
  ConfigField f = field(section, key, sec, member, {}, doc);
  f.non_empty = non_empty;
  return f;
}

const FieldRange kAny{};
const FieldRange kPositive{0.0, std::nullopt, true, false};     // > 0
const FieldRange kNonNegative{0.0, std::nullopt, false, false};  // >= 0
const FieldRange kAtLeastOne{1.0, std::nullopt, false, false};   // >= 1
const FieldRange kUnit{0.0, 1.0, false, false};                  // [0, 1]
const FieldRange kBeta{0.0, 1.0, false, true};                   // [0, 1)

std::vector<ConfigField> make_fields() {
  using C = Config;
  std::vector<ConfigField> f;

  ConfigField device;
  device.section = "";
  device.key = "device";
  device.type = FieldType::kChoice;
  device.ref = [](Config& c) -> void* { return &c.device; };
  static_assert(std::is_same_v<std::underlying_type_t<DeviceChoice>, int>);
  device.choices = {"auto", "cpu", "cuda"};
  device.doc = "Where the job computes. auto: cuda when the binary has the CUDA layer and a GPU "
               "is visible, else cpu.";
  f.push_back(device);

  f.push_back(text("run", "name", &C::run, &RunConfig::name, true,
                   "Run name, shown in logs and stored in checkpoints."));
  f.push_back(text("run", "out_dir", &C::run, &RunConfig::out_dir, true,
                   "Output directory: config.yaml (the resolved config) and metrics.jsonl."));
  f.push_back(field("run", "seed", &C::run, &RunConfig::seed, kAny,
                    "Seed of parameter initialization and of the data order (a sample is a "
                    "function of seed, step and index alone)."));
  f.push_back(field("run", "threads", &C::run, &RunConfig::threads, kNonNegative,
                    "CPU threads per rank; 0: the node's cores divided by the ranks on the node, "
                    "within the rank's CPU affinity."));

  f.push_back(field("model", "vocab_size", &C::model, &ModelConfig::vocab_size, kAtLeastOne,
                    "Vocabulary size (256 for the built-in byte tokenizer). Divisible by "
                    "parallel.tp (the embedding and output projection are vocab-parallel)."));
  f.push_back(field("model", "d_model", &C::model, &ModelConfig::d_model, kAtLeastOne,
                    "Hidden size. Divisible by n_heads; d_model / n_heads is the head dimension "
                    "and must be even (RoPE rotates pairs)."));
  f.push_back(field("model", "n_layers", &C::model, &ModelConfig::n_layers, kAtLeastOne,
                    "Number of decoder layers."));
  f.push_back(field("model", "n_heads", &C::model, &ModelConfig::n_heads, kAtLeastOne,
                    "Attention (query) heads. Divisible by parallel.tp and by n_kv_heads."));
  f.push_back(field("model", "n_kv_heads", &C::model, &ModelConfig::n_kv_heads, kAtLeastOne,
                    "Key/value heads (GQA; 1 is MQA, n_heads is plain multi-head attention). "
                    "Divisible by parallel.tp."));
  f.push_back(field("model", "d_ff", &C::model, &ModelConfig::d_ff, kNonNegative,
                    "SwiGLU hidden size; 0: the Llama rule, int(8 * d_model / 3) rounded up to "
                    "a multiple of 32. Divisible by parallel.tp."));
  f.push_back(field("model", "rope_theta", &C::model, &ModelConfig::rope_theta, kPositive,
                    "RoPE base frequency."));
  f.push_back(choice("model", "rope_scaling", &C::model, &ModelConfig::rope_scaling,
                     {"none", "linear", "llama3", "yarn"},
                     "RoPE scaling as Hugging Face defines it (config.json's rope_scaling type): "
                     "linear divides every frequency by rope_factor; llama3 divides the low "
                     "frequencies by rope_factor and blends the middle band (rope_low_freq_factor, "
                     "rope_high_freq_factor); yarn blends interpolated and original frequencies "
                     "per dimension (rope_beta_fast, rope_beta_slow) and scales cos/sin by "
                     "rope_attention_factor. Changes no tensor shape (checkpoint.init_from may "
                     "change it)."));
  f.push_back(field("model", "rope_factor", &C::model, &ModelConfig::rope_factor, kAtLeastOne,
                    "RoPE scaling factor (linear, llama3, yarn): the new context over the old."));
  f.push_back(field("model", "rope_original_max_position_embeddings", &C::model,
                    &ModelConfig::rope_original_max_position_embeddings, kNonNegative,
                    "The context the model was pretrained at (llama3, yarn: required, > 0)."));
  f.push_back(field("model", "rope_low_freq_factor", &C::model, &ModelConfig::rope_low_freq_factor,
                    kPositive,
                    "llama3: frequencies with a wavelength above original / low_freq_factor are "
                    "divided by rope_factor."));
  f.push_back(field("model", "rope_high_freq_factor", &C::model, &ModelConfig::rope_high_freq_factor,
                    kPositive,
                    "llama3: frequencies with a wavelength below original / high_freq_factor are "
                    "kept; must exceed rope_low_freq_factor."));
  f.push_back(field("model", "rope_beta_fast", &C::model, &ModelConfig::rope_beta_fast, kPositive,
                    "yarn: dimensions turning more than beta_fast times over the original context "
                    "keep their frequency."));
  f.push_back(field("model", "rope_beta_slow", &C::model, &ModelConfig::rope_beta_slow, kPositive,
                    "yarn: dimensions turning fewer than beta_slow times are interpolated."));
  f.push_back(field("model", "rope_attention_factor", &C::model, &ModelConfig::rope_attention_factor,
                    kNonNegative,
                    "yarn: multiplies cos and sin; 0: 0.1 * ln(rope_factor) + 1 (the YaRN paper's)."));
  f.push_back(field("model", "rope_truncate", &C::model, &ModelConfig::rope_truncate, kAny,
                    "yarn: round the correction range to whole dimensions (transformers' default)."));
  f.push_back(field("model", "norm_eps", &C::model, &ModelConfig::norm_eps, kPositive,
                    "RMSNorm epsilon."));
  f.push_back(field("model", "tie_embeddings", &C::model, &ModelConfig::tie_embeddings, kAny,
                    "Share the token embedding with the output projection."));
  f.push_back(field("model", "init_std", &C::model, &ModelConfig::init_std, kPositive,
                    "Standard deviation of the normal initialization of weights."));
  f.push_back(field("model", "sliding_window", &C::model, &ModelConfig::sliding_window, kNonNegative,
                    "Sliding-window attention (Mistral): a query at in-document position p sees "
                    "keys at p-W+1..p only; 0 turns it off. A window of seq_len or more covers "
                    "everything."));

  f.push_back(field("parallel", "dp", &C::parallel, &ParallelConfig::dp, kAtLeastOne,
                    "Data-parallel replicas. dp * cp * tp must equal the number of ranks."));
  f.push_back(field("parallel", "cp", &C::parallel, &ParallelConfig::cp, kAtLeastOne,
                    "Context-parallel ranks: each holds 2 zigzag chunks of every sequence, so "
                    "train.seq_len must be divisible by 2 * cp."));
  f.push_back(field("parallel", "tp", &C::parallel, &ParallelConfig::tp, kAtLeastOne,
                    "Tensor-parallel ranks: heads, MLP columns and the vocabulary are split "
                    "across them."));
  f.push_back(choice("parallel", "cp_mode", &C::parallel, &ParallelConfig::cp_mode,
                     {"ring", "ulysses", "hybrid"},
                     "How the cp ranks attend across the sequence: ring (K/V blocks travel a "
                     "ring), ulysses (all-to-all to head-sharded), hybrid (cp = ulysses_degree x "
                     "ring)."));
  f.push_back(field("parallel", "ulysses_degree", &C::parallel, &ParallelConfig::ulysses_degree,
                    kAtLeastOne,
                    "Ulysses group size. ring: must be 1. ulysses: 1 or cp, resolved to cp. "
                    "hybrid: > 1, < cp and divides cp. It must divide n_heads / tp; it may "
                    "exceed n_kv_heads / tp (kv heads are then duplicated to the members "
                    "that read them)."));
  f.push_back(choice("parallel", "device_comm", &C::parallel, &ParallelConfig::device_comm,
                     {"auto", "nccl", "staged"},
                     "How a GPU job's ranks exchange device tensors: nccl (one process per GPU), "
                     "staged (copies through host memory and MPI: several processes may share a "
                     "GPU), auto (nccl when every process has its own GPU). Ignored on the CPU."));
  f.push_back(field("parallel", "sequence_parallel", &C::parallel,
                    &ParallelConfig::sequence_parallel, kAny,
                    "Split norms and residuals over the sequence across tp ranks (all-gather "
                    "before, reduce-scatter after). Needs seq_len / cp divisible by tp."));
  f.push_back(choice("parallel", "zero", &C::parallel, &ParallelConfig::zero, {"0", "1", "2", "3"},
                     "ZeRO sharding over the dp x cp ranks (they hold the same parameters): 0 "
                     "none; 1 AdamW moments and fp32 master weights (gradients reduce-scattered, "
                     "weights all-gathered); 2 also the gradient buffer (each layer's gradients "
                     "reduce-scattered as the backward produces them); 3 also the parameters "
                     "(each layer's weights all-gathered before its forward and backward, the "
                     "next layer's gather prefetched, freed after use; in bf16 on a GPU all but "
                     "the embedding gathered in bf16)."));
  f.push_back(field("parallel", "zero1", &C::parallel, &ParallelConfig::zero1, kAny,
                    "Synonym of parallel.zero: 1 (kept for existing configs); true with another "
                    "parallel.zero level is an error."));
  f.push_back(field("parallel", "zero3_keep_for_backward", &C::parallel,
                    &ParallelConfig::zero3_keep_for_backward, kAny,
                    "parallel.zero 3: keep each layer's gathered weights from its forward to its "
                    "backward (one all-gather per layer and step less, every layer's weights "
                    "held at the end of the forward)."));

  f.push_back(field("train", "seq_len", &C::train, &TrainConfig::seq_len, kAtLeastOne,
                    "Tokens per sample. Divisible by 2 * parallel.cp (zigzag layout); at least "
                    "64 for the synthetic tasks."));
  f.push_back(field("train", "micro_batch", &C::train, &TrainConfig::micro_batch, kAtLeastOne,
                    "Samples per data-parallel replica per micro-step."));
  f.push_back(field("train", "grad_accum", &C::train, &TrainConfig::grad_accum, kAtLeastOne,
                    "Micro-steps per optimizer step. Global batch = dp * micro_batch * "
                    "grad_accum samples."));
  f.push_back(field("train", "steps", &C::train, &TrainConfig::steps, kAtLeastOne,
                    "Optimizer steps of the run."));
  f.push_back(field("train", "lr", &C::train, &TrainConfig::lr, kNonNegative,
                    "Peak learning rate."));
  f.push_back(field("train", "min_lr", &C::train, &TrainConfig::min_lr, kNonNegative,
                    "Final learning rate of the cosine schedule; at most lr."));
  f.push_back(field("train", "warmup_steps", &C::train, &TrainConfig::warmup_steps,
                    kNonNegative, "Linear warm-up steps from 0 to lr."));
  f.push_back(choice("train", "schedule", &C::train, &TrainConfig::schedule,
                     {"cosine", "constant"},
                     "Learning rate after warm-up: cosine decay to min_lr at the last step, or "
                     "constant lr."));
  f.push_back(field("train", "weight_decay", &C::train, &TrainConfig::weight_decay,
                    kNonNegative, "AdamW decoupled weight decay (matrices only, not norms)."));
  f.push_back(field("train", "beta1", &C::train, &TrainConfig::beta1, kBeta, "AdamW beta1."));
  f.push_back(field("train", "beta2", &C::train, &TrainConfig::beta2, kBeta, "AdamW beta2."));
  f.push_back(field("train", "eps", &C::train, &TrainConfig::eps, kPositive, "AdamW epsilon."));
  f.push_back(field("train", "grad_clip", &C::train, &TrainConfig::grad_clip, kNonNegative,
                    "Clip the global gradient norm to this value; 0 disables clipping."));
  f.push_back(choice("train", "precision", &C::train, &TrainConfig::precision,
                     {"fp32", "bf16"},
                     "Compute precision: fp32, or bf16 with fp32 accumulation and fp32 master "
                     "weights (CUDA)."));
  f.push_back(field("train", "recompute", &C::train, &TrainConfig::recompute, kAny,
                    "Recompute each layer's activations in backward instead of keeping them."));
  f.push_back(field("train", "eval_every", &C::train, &TrainConfig::eval_every, kNonNegative,
                    "Evaluate every this many steps; 0: only at the end."));
  f.push_back(field("train", "eval_batches", &C::train, &TrainConfig::eval_batches,
                    kAtLeastOne, "Global batches per evaluation."));
  f.push_back(choice("train", "on_nonfinite", &C::train, &TrainConfig::on_nonfinite,
                     {"stop", "skip"},
                     "A non-finite loss or gradient: stop the run with an error, or skip the "
                     "step (no update) and go on."));

  f.push_back(choice("data", "task", &C::data, &DataConfig::task, {"text", "passkey", "recall"},
                     "text: next-token prediction on token files; passkey: retrieve a number "
                     "hidden in filler; recall: associative recall of key-value pairs."));
  f.push_back(text("data", "train", &C::data, &DataConfig::train, false,
                   "Training token file (task text; required and must exist). Relative paths "
                   "are relative to the working directory."));
  f.push_back(text("data", "val", &C::data, &DataConfig::val, false,
                   "Validation token file (task text; must exist if set); empty: a held-out "
                   "split of data.train."));
  f.push_back(choice("data", "format", &C::data, &DataConfig::format, {"ringtrain", "megatron"},
                     "How data.train and data.val are stored: ringtrain token files "
                     "(prepare-text, scripts/prepare-data), or megatron: each names the PREFIX of "
                     "a Megatron-LM/NeMo indexed dataset, PREFIX.bin and PREFIX.idx (uint16 or "
                     "int32 tokens), whose documents are the document index."));
  f.push_back(text("data", "prompt_tokens", &C::data, &DataConfig::prompt_tokens, false,
                   "The synthetic prompts' fixed words and digits as token ids of a real "
                   "tokenizer (a JSON file scripts/prepare-data --prompts writes; must exist if "
                   "set); the passkey haystack must then be that tokenizer's text. Empty: "
                   "byte-level prompts."));
  f.push_back(choice("data", "packing", &C::data, &DataConfig::packing, {"none", "documents"},
                     "none: a sample is one stream whose tokens all see each other; documents: "
                     "a sample packs whole documents (and seq_len-aligned fragments of long "
                     "ones) from the token file's document index; attention, RoPE positions "
                     "and the loss stop at every document boundary."));
  f.push_back(field("data", "passkey_digits", &C::data, &DataConfig::passkey_digits,
                    FieldRange{1.0, 32.0, false, false}, "Digits of the passkey."));
  f.push_back(field("data", "passkey_min_depth", &C::data, &DataConfig::passkey_min_depth,
                    kUnit, "Earliest position of the passkey, as a fraction of the prompt."));
  f.push_back(field("data", "passkey_max_depth", &C::data, &DataConfig::passkey_max_depth,
                    kUnit,
                    "Latest position of the passkey, as a fraction of the prompt; at least "
                    "passkey_min_depth."));
  f.push_back(field("data", "recall_pairs", &C::data, &DataConfig::recall_pairs, kAtLeastOne,
                    "Key-value pairs per associative-recall sample."));
  f.push_back(choice("data", "loss", &C::data, &DataConfig::loss, {"all", "answer"},
                     "Which targets the loss scores: every next token, or only the answer "
                     "tokens of the synthetic tasks (passkey, recall); accuracy is the same."));

  f.push_back(text("checkpoint", "dir", &C::checkpoint, &CheckpointConfig::dir, false,
                   "Checkpoint directory; empty: no checkpoints."));
  f.push_back(field("checkpoint", "every", &C::checkpoint, &CheckpointConfig::every,
                    kNonNegative,
                    "Save every this many steps; 0: only at the end and on SIGTERM/SIGUSR1."));
  f.push_back(field("checkpoint", "keep", &C::checkpoint, &CheckpointConfig::keep, kAtLeastOne,
                    "Keep the newest this many checkpoints."));
  ConfigField resume = text("checkpoint", "resume", &C::checkpoint, &CheckpointConfig::resume,
                            true,
                            "auto: continue from the newest valid checkpoint in dir, if any; "
                            "none: start fresh; a path: resume from that checkpoint file "
                            "(must exist).");
  resume.allowed_doc = "auto | none | PATH";
  f.push_back(resume);
  ConfigField init_from = text("checkpoint", "init_from", &C::checkpoint, &CheckpointConfig::init_from, false,
                               "A checkpoint (file or directory; e.g. one `ringtrain import` wrote) whose "
                               "weights start a new run: any layout, step 0, a fresh optimizer, this "
                               "run's data order. The model section may differ from the checkpoint's only "
                               "in what changes no tensor: rope_theta, rope_scaling and its parameters, "
                               "sliding_window (and init_std, unused). A checkpoint that resume finds "
                               "(this run's own, after a preemption) is loaded instead. Empty: off.");
  init_from.allowed_doc = "PATH or empty";
  f.push_back(init_from);

  f.push_back(field("log", "every", &C::log, &LogConfig::every, kAtLeastOne,
                    "Log (progress line and metrics.jsonl) every this many steps."));
  f.push_back(choice("log", "progress", &C::log, &LogConfig::progress,
                     {"auto", "always", "never"},
                     "Live progress line on rank 0: auto (only on a terminal), always, never."));
  f.push_back(field("log", "tensorboard", &C::log, &LogConfig::tensorboard, kAny,
                    "Also write TensorBoard event files to run.out_dir/tb (rank 0)."));
  f.push_back(field("log", "peak_tflops", &C::log, &LogConfig::peak_tflops, kNonNegative,
                    "Peak dense TFLOPS of one device (e.g. 989 for an H100 SXM in bf16), for "
                    "MFU; 0: unknown, MFU not reported. See docs/METRICS.md."));
  return f;
}

std::string format_double(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// "a | b" inside a Markdown table cell.
std::string escape_bars(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = make_fields();
  return fields;
}

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> sections = {"run",  "model",      "parallel", "train",
                                                    "data", "checkpoint", "log"};
  return sections;
}

const ConfigField* find_config_field(const std::string& name) {
  for (const auto& f : config_fields())
    if (f.name() == name) return &f;
  return nullptr;
}

std::string config_field_text(const Config& config, const ConfigField& field) {
  void* p = field.ref(const_cast<Config&>(config));
  switch (field.type) {
    case FieldType::kInt: return std::to_string(*static_cast<int*>(p));
    case FieldType::kU64: return std::to_string(*static_cast<uint64_t*>(p));
    case FieldType::kDouble: return format_double(*static_cast<double*>(p));
    case FieldType::kBool: return *static_cast<bool*>(p) ? "true" : "false";
    case FieldType::kChoice: return field.choices.at(static_cast<size_t>(*static_cast<int*>(p)));
    case FieldType::kString: {
      // The emitter quotes what a plain scalar could not carry ("", "null", ": ", "#").
      YAML::Emitter e;
      e << *static_cast<std::string*>(p);
      return e.c_str();
    }
  }
  return "";
}

std::string config_field_allowed(const ConfigField& field) {
  if (!field.allowed_doc.empty()) return field.allowed_doc;
  if (field.type == FieldType::kChoice) {
    std::string s;
    for (const auto& c : field.choices) s += (s.empty() ? "" : " | ") + c;
    return s;
  }
  if (field.type == FieldType::kBool) return "true | false";
  if (field.type == FieldType::kString) return field.non_empty ? "non-empty" : "any";
  const FieldRange& r = field.range;
  if (r.lo && r.hi)
    return std::string(r.lo_open ? "(" : "[") + format_double(*r.lo) + ", " +
           format_double(*r.hi) + (r.hi_open ? ")" : "]");
  if (r.lo) return std::string(r.lo_open ? "> " : ">= ") + format_double(*r.lo);
  if (r.hi) return std::string(r.hi_open ? "< " : "<= ") + format_double(*r.hi);
  return "any";
}

std::string config_field_type_name(const ConfigField& field) {
  switch (field.type) {
    case FieldType::kInt: return "int";
    case FieldType::kU64: return "uint64";
    case FieldType::kDouble: return "float";
    case FieldType::kBool: return "bool";
    case FieldType::kString: return "string";
    case FieldType::kChoice: return "enum";
  }
  return "";
}

std::string model_differences(const Config& a, const std::string& a_label, const Config& b,
                              const std::string& b_label, const std::vector<std::string>& ignore) {
  std::string out;
  for (const auto& f : config_fields()) {
    if (f.section != "model") continue;
    bool skip = false;
    for (const std::string& i : ignore) skip = skip || f.key == i || (i.back() == '*' && f.key.rfind(i.substr(0, i.size() - 1), 0) == 0);
    if (skip) continue;
    const std::string va = config_field_text(a, f), vb = config_field_text(b, f);
    if (va != vb) out += (out.empty() ? "" : "; ") + f.name() + " is " + va + " " + a_label + " but " + vb + " " + b_label;
  }
  return out;
}

bool same_settings(const Config& a, const Config& b) {
  for (const auto& f : config_fields())
    if (config_field_text(a, f) != config_field_text(b, f)) return false;
  return true;
}

std::string config_reference_markdown() {
  const Config defaults;
  std::ostringstream os;
  auto section_table = [&](const std::string& section, const std::string& title) {
    os << "### " << title << "\n\n";
    os << "| key | type | default | allowed | meaning |\n";
    os << "|---|---|---|---|---|\n";
    for (const auto& f : config_fields()) {
      if (f.section != section) continue;
      os << "| `" << f.name() << "` | " << config_field_type_name(f) << " | `"
         << config_field_text(defaults, f) << "` | " << escape_bars(config_field_allowed(f))
         << " | " << f.doc << " |\n";
    }
    os << "\n";
  };
  section_table("", "top level");
  for (const auto& s : config_sections()) section_table(s, "`" + s + "`");
  return os.str();
}

}  // namespace ringtrain

namespace ringtrain {
namespace {
std::string choice_word(const char* key, int v) {
  const ConfigField* f = find_config_field(key);
  RT_CHECK(f != nullptr && v >= 0 && v < static_cast<int>(f->choices.size()), "no value ", v, " of ", key);
  return f->choices[static_cast<size_t>(v)];
}
}  // namespace

std::string to_string(DeviceChoice v) { return choice_word("device", static_cast<int>(v)); }
std::string to_string(RopeScalingType v) { return choice_word("model.rope_scaling", static_cast<int>(v)); }
std::string to_string(CpMode v) { return choice_word("parallel.cp_mode", static_cast<int>(v)); }
std::string to_string(DeviceComm v) { return choice_word("parallel.device_comm", static_cast<int>(v)); }
std::string to_string(LrSchedule v) { return choice_word("train.schedule", static_cast<int>(v)); }
std::string to_string(TrainPrecision v) { return choice_word("train.precision", static_cast<int>(v)); }
std::string to_string(OnNonFinite v) { return choice_word("train.on_nonfinite", static_cast<int>(v)); }
std::string to_string(Task v) { return choice_word("data.task", static_cast<int>(v)); }
std::string to_string(LossTargets v) { return choice_word("data.loss", static_cast<int>(v)); }
std::string to_string(Packing v) { return choice_word("data.packing", static_cast<int>(v)); }
std::string to_string(DataFormat v) { return choice_word("data.format", static_cast<int>(v)); }
std::string to_string(Progress v) { return choice_word("log.progress", static_cast<int>(v)); }

}  // namespace ringtrain
