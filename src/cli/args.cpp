#include "src/cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>

#include "src/config/suggest.h"
#include "src/core/error.h"
#include "src/plan/gpu_kinds.h"

namespace ringtrain {
namespace {

// A flag of a subcommand. `apply` receives the value (empty for flags without one).
struct FlagSpec {
  std::string name;  // "--checkpoint"
  std::string value_name;  // "P"; "" for a flag without a value
  std::string help;
  std::function<void(CommandLine&, const std::string& value, const std::string& flag)> apply;
};

struct CommandSpec {
  Command command;
  std::string name;
  std::string synopsis;  // after "ringtrain NAME "
  std::string help;
  std::vector<FlagSpec> flags;
};

long long parse_integer(const std::string& flag, const std::string& text, bool allow_suffix) {
  std::string digits = text;
  long long scale = 1;
  if (allow_suffix && !digits.empty()) {
    const char last = digits.back();
    if (last == 'k' || last == 'K') scale = 1024;
    if (last == 'm' || last == 'M') scale = 1024 * 1024;
    if (scale != 1) digits.pop_back();
  }
  bool ok = !digits.empty();
  for (char c : digits) ok = ok && c >= '0' && c <= '9';
  errno = 0;
  long long v = ok ? std::strtoll(digits.c_str(), nullptr, 10) : 0;
  if (!ok || errno == ERANGE || v > (1LL << 40))
    input_error(flag, " expects a non-negative integer", allow_suffix ? " (k = 1024, m = 1024^2)" : "",
                ", got '", text, "'");
  return v * scale;
}

double parse_real(const std::string& flag, const std::string& text) {
  bool ok = !text.empty();
  for (char c : text)
    ok = ok && ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+');
  char* end = nullptr;
  errno = 0;
  double v = ok ? std::strtod(text.c_str(), &end) : 0.0;
  if (!ok || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    input_error(flag, " expects a number, got '", text, "'");
  return v;
}

int positive_int(const std::string& flag, const std::string& text) {
  const long long n = parse_integer(flag, text, false);
  if (n < 1 || n > 1000000) input_error(flag, " expects an integer in [1, 1000000], got '", text, "'");
  return static_cast<int>(n);
}

double positive_real(const std::string& flag, const std::string& text) {
  const double x = parse_real(flag, text);
  if (x <= 0) input_error(flag, " expects a number > 0, got '", text, "'");
  return x;
}

std::vector<std::string> split_commas(const std::string& flag, const std::string& text) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : text) {
    if (c == ',') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  for (const auto& p : parts)
    if (p.empty()) input_error(flag, " expects a comma-separated list (a,b,c), got '", text, "'");
  return parts;
}

void set_once(std::string& slot, const std::string& value, const std::string& flag) {
  if (!slot.empty()) input_error(flag, " given twice ('", slot, "' and '", value, "')");
  if (value.empty()) input_error(flag, " needs a non-empty value");
  slot = value;
}

FlagSpec set_flag() {
  return {"--set", "k=v", "override a config key, typed like YAML (repeatable): --set train.lr=3e-4",
          [](CommandLine& c, const std::string& v, const std::string& flag) {
            if (v.empty()) input_error(flag, " needs section.key=value, e.g. --set train.lr=3e-4");
            c.overrides.push_back(v);
          }};
}

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> specs = {
      {Command::kTrain,
       "train",
       "CONFIG [--set k=v]... [--dry-run]",
       "Train a model as the YAML config says (launch under mpirun for several ranks).",
       {set_flag(),
        {"--dry-run", "", "print the mesh, parameter counts and memory per rank, then exit",
         [](CommandLine& c, const std::string&, const std::string&) { c.dry_run = true; }}}},
      {Command::kEval,
       "eval",
       "CONFIG [--checkpoint P] [--data TOKENS.bin] [--set k=v]... [--needle] [--lengths a,b] "
       "[--depths x,y] [--samples N] [--no-cross-rank]",
       "Evaluate a checkpoint (loss, or accuracy on the synthetic tasks); ends with one JSON "
       "line.",
       {{"--checkpoint", "P", "checkpoint file (default: the newest in checkpoint.dir)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           set_once(c.checkpoint, v, f);
         }},
        {"--data", "TOKENS.bin", "token file to evaluate on (default: the config's data)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           set_once(c.data, v, f);
         }},
        set_flag(),
        {"--needle", "", "needle-in-a-haystack sweep over --lengths x --depths",
         [](CommandLine& c, const std::string&, const std::string&) { c.needle = true; }},
        {"--lengths", "a,b", "context lengths of the sweep (suffix k = 1024): 4k,16k",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.lengths.clear();
           for (const auto& p : split_commas(f, v)) {
             long long n = parse_integer(f, p, true);
             if (n <= 0) input_error(f, " expects positive lengths, got '", p, "'");
             c.lengths.push_back(n);
           }
         }},
        {"--depths", "x,y", "needle depths as fractions of the context, in [0, 1]: 0,0.5,1",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.depths.clear();
           for (const auto& p : split_commas(f, v)) {
             double x = parse_real(f, p);
             if (x < 0.0 || x > 1.0) input_error(f, " expects depths in [0, 1], got '", p, "'");
             c.depths.push_back(x);
           }
         }},
        {"--samples", "N", "samples per (length, depth) cell",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           long long n = parse_integer(f, v, false);
           if (n < 1 || n > 1000000000) input_error(f, " expects an integer >= 1, got '", v, "'");
           c.samples = static_cast<int>(n);
         }},
        {"--no-cross-rank", "", "control: attention restricted to each rank's own tokens (a key in another rank's chunk cannot be found)",
         [](CommandLine& c, const std::string&, const std::string&) { c.cross_rank = false; }}}},
      {Command::kAttend,
       "attend",
       "CONFIG [--checkpoint P] (--text \"...\" | --text-file F | --data TOKENS.bin --sample I | --needle "
       "[--length L] [--depth D]) [--layers a,b] [--heads a,b] [--rows last,needle,i] [--pool B] [--out F.h5] "
       "[--no-cross-rank] [--set k=v]...",
       "What the model attends to: exact attention rows, pooled maps and per-head summaries (retrieval "
       "heads with --needle) on any parallel layout, written to one HDF5 file.",
       {{"--checkpoint", "P", "checkpoint file (default: the newest in checkpoint.dir)",
         [](CommandLine& c, const std::string& v, const std::string& f) { set_once(c.checkpoint, v, f); }},
        {"--text", "\"...\"", "the prompt, through the model's (byte) tokenizer",
         [](CommandLine& c, const std::string& v, const std::string& f) { set_once(c.text, v, f); }},
        {"--text-file", "F", "the prompt from a text file",
         [](CommandLine& c, const std::string& v, const std::string& f) { set_once(c.text_file, v, f); }},
        {"--data", "TOKENS.bin", "token file: the prompt is window --sample I of train.seq_len tokens (with --needle: the haystack)",
         [](CommandLine& c, const std::string& v, const std::string& f) { set_once(c.data, v, f); }},
        {"--sample", "I", "which window of --data",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.sample = parse_integer(f, v, false); }},
        {"--needle", "", "a passkey prompt (the needle sweep's), with the retrieval heads ranked",
         [](CommandLine& c, const std::string&, const std::string&) { c.needle = true; }},
        {"--length", "L", "--needle: prompt length (suffix k = 1024; default train.seq_len)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.length = parse_integer(f, v, true);
           if (c.length <= 0) input_error(f, " expects a positive length, got '", v, "'");
         }},
        {"--depth", "D", "--needle: needle depth in [0, 1] (default 0.5)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.depth = parse_real(f, v);
           if (c.depth < 0.0 || c.depth > 1.0) input_error(f, " expects a depth in [0, 1], got '", v, "'");
         }},
        {"--layers", "a,b", "layers to read (default all)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.layers.clear();
           for (const auto& p : split_commas(f, v)) c.layers.push_back(static_cast<int>(parse_integer(f, p, false)));
         }},
        {"--heads", "a,b", "heads to write (default all)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.heads.clear();
           for (const auto& p : split_commas(f, v)) c.heads.push_back(static_cast<int>(parse_integer(f, p, false)));
         }},
        {"--rows", "last,needle,i", "query rows whose full probability rows are written (default last)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.rows.clear();
           for (const auto& p : split_commas(f, v)) {
             if (p != "last" && p != "needle") parse_integer(f, p, false);
             c.rows.push_back(p);
           }
         }},
        {"--spans", "lo:hi,..", "key spans [lo, hi) whose attention mass is written per row, besides the sink, "
         "the needle and the documents",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           c.spans.clear();
           for (const auto& p : split_commas(f, v)) {
             const auto colon = p.find(':');
             if (colon == std::string::npos) input_error(f, " expects spans lo:hi, got '", p, "'");
             const long long lo = parse_integer(f, p.substr(0, colon), false);
             const long long hi = parse_integer(f, p.substr(colon + 1), false);
             if (hi <= lo) input_error(f, " expects lo < hi, got '", p, "'");
             c.spans.emplace_back(lo, hi);
           }
         }},
        {"--pool", "B", "pooled map block size; divides the prompt length (default: length / 64, at least 1)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           const long long n = parse_integer(f, v, true);
           if (n < 1) input_error(f, " expects a block size >= 1, got '", v, "'");
           c.pool = static_cast<int>(n);
         }},
        {"--out", "F.h5", "output file (default run.out_dir/attention.h5)",
         [](CommandLine& c, const std::string& v, const std::string& f) { set_once(c.out, v, f); }},
        {"--no-cross-rank", "", "control: attention restricted to each rank's own tokens",
         [](CommandLine& c, const std::string&, const std::string&) { c.cross_rank = false; }},
        set_flag()}},
      {Command::kPlan,
       "plan",
       "CONFIG [--set k=v]... --gpus N [--gpu h100|h200|a100|b200|cpu] [--max-context] [--search [--json]]",
       "Memory per rank, bytes per group and step time of the config's layout (parallel.cp x tp, "
       "dp = N / (cp*tp)) on N GPUs, or with --search of every layout that fits, computed on this "
       "machine: no MPI world, nothing launched.",
       {set_flag(),
        {"--gpus", "N", "GPUs (ranks) of the job",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           const long long n = parse_integer(f, v, false);
           if (n < 1 || n > 1000000) input_error(f, " expects an integer in [1, 1000000], got '", v, "'");
           c.gpus = static_cast<int>(n);
         }},
        {"--gpu", "KIND", "h100 (default), h200, a100, b200, or cpu (the CPU backend)",
         [](CommandLine& c, const std::string& v, const std::string&) { c.gpu = gpu_kind(v).name; }},
        {"--max-context", "", "plan the longest train.seq_len that fits the GPU's memory",
         [](CommandLine& c, const std::string&, const std::string&) { c.max_context = true; }},
        {"--search", "", "every (dp, cp, tp, cp_mode, ulysses_degree, sequence_parallel, zero1, recompute, "
         "micro_batch) that fits, ranked by predicted tokens/s",
         [](CommandLine& c, const std::string&, const std::string&) { c.search = true; }},
        {"--json", "", "--search: print every layout that fits as JSON instead of the table",
         [](CommandLine& c, const std::string&, const std::string&) { c.json = true; }},
        {"--top", "K", "--search: rows of the table (default 10)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.top = positive_int(f, v); }},
        {"--gpus-per-node", "N", "GPUs sharing a node's links (default 8)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.gpus_per_node = positive_int(f, v); }},
        {"--intra-bw", "GB/s", "link bandwidth inside a node, per GPU and direction (default: the GPU kind's)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.intra_bw = positive_real(f, v); }},
        {"--inter-bw", "GB/s", "network bandwidth between nodes, per GPU and direction (default: the GPU kind's)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.inter_bw = positive_real(f, v); }},
        {"--latency-us", "US", "start-up time of one message (default: the GPU kind's)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.latency_us = positive_real(f, v); }},
        {"--gemm-tflops", "T", "achievable GEMM rate per GPU (default: the GPU kind's)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.gemm_tflops = positive_real(f, v); }},
        {"--attn-fwd-tflops", "T", "achievable attention forward rate per GPU (default: the GPU kind's)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.attn_fwd_tflops = positive_real(f, v); }},
        {"--attn-bwd-tflops", "T", "achievable attention backward rate per GPU (default: the GPU kind's)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.attn_bwd_tflops = positive_real(f, v); }},
        {"--memory-gib", "G", "memory per GPU in GiB (default: the GPU kind's; with --gpu cpu: a limit)",
         [](CommandLine& c, const std::string& v, const std::string& f) { c.memory_gib = positive_real(f, v); }}}},
      {Command::kConfig,
       "config",
       "CONFIG [--set k=v]...",
       "Check a config and print it resolved (every key, defaults filled in) as YAML.",
       {set_flag()}},
      {Command::kPrepareText,
       "prepare-text",
       "FILES... --out X.bin [--val-fraction F] [--width 16|32] [--doc-separator REGEX]",
       "Tokenize text files with the built-in byte tokenizer into a token file with a document "
       "index: one document per file, and per --doc-separator match within a file.",
       {{"--out", "X.bin", "token file to write",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           set_once(c.out, v, f);
         }},
        {"--val-fraction", "F",
         "fraction in [0, 1) of the tokens written to a separate validation file (default 0)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           double x = parse_real(f, v);
           if (x < 0.0 || x >= 1.0) input_error(f, " expects a fraction in [0, 1), got '", v, "'");
           c.val_fraction = x;
         }},
        {"--width", "16|32", "token width in bits (default 16)",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           if (v != "16" && v != "32") input_error(f, " must be 16 or 32, got '", v, "'");
           c.width = v == "16" ? 16 : 32;
         }},
        {"--doc-separator", "REGEX",
         "ECMAScript regular expression (^ and $ match at line ends); each match ends a document "
         "and is dropped: '\\n\\n+' (blank lines), '<\\|endoftext\\|>', '(?=^CHAPTER )' "
         "(zero-width: splits before each heading). Default: one document per file",
         [](CommandLine& c, const std::string& v, const std::string& f) {
           set_once(c.doc_separator, v, f);
         }}}},
      {Command::kInspect,
       "inspect",
       "CKPT",
       "Describe a checkpoint: step, config, writer's mesh, tensors.",
       {}},
      {Command::kExport,
       "export",
       "CKPT OUT_DIR",
       "Export a checkpoint to a Hugging Face Llama directory (safetensors + config.json).",
       {}},
      {Command::kImport,
       "import",
       "HF_DIR OUT.h5",
       "Import a Hugging Face Llama or Mistral directory (config.json + safetensors, fp32/fp16/bf16) "
       "as a checkpoint at step 0 that any layout loads, and OUT.yaml, its config.",
       {}},
  };
  return specs;
}

const CommandSpec* find_command(Command c) {
  for (const auto& s : commands())
    if (s.command == c) return &s;
  return nullptr;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& s : commands()) names.push_back(s.name);
  return names;
}

std::string joined_names() {
  std::string s;
  for (const auto& n : command_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

[[noreturn]] void usage_error(const CommandSpec& spec, const std::string& what) {
  input_error("ringtrain ", spec.name, ": ", what, " (usage: ringtrain ", spec.name, " ",
              spec.synopsis, ")");
}

// The positional arguments of each subcommand.
void assign_positionals(CommandLine& c, const CommandSpec& spec,
                        const std::vector<std::string>& pos) {
  auto exactly = [&](std::size_t n, const char* names) {
    if (pos.size() < n) usage_error(spec, std::string("missing ") + names);
    if (pos.size() > n) usage_error(spec, "unexpected argument '" + pos[n] + "'");
  };
  switch (spec.command) {
    case Command::kTrain:
    case Command::kEval:
    case Command::kAttend:
    case Command::kConfig:
      exactly(1, "CONFIG");
      c.config_path = pos[0];
      break;
    case Command::kPlan:
      exactly(1, "CONFIG");
      c.config_path = pos[0];
      if (c.gpus == 0) usage_error(spec, "missing --gpus N");
      break;
    case Command::kPrepareText:
      if (pos.empty()) usage_error(spec, "missing FILES (the text files to tokenize)");
      c.inputs = pos;
      if (c.out.empty()) usage_error(spec, "missing --out X.bin");
      break;
    case Command::kInspect:
      exactly(1, "CKPT");
      c.checkpoint = pos[0];
      break;
    case Command::kExport:
      exactly(2, pos.empty() ? "CKPT and OUT_DIR" : "OUT_DIR");
      c.checkpoint = pos[0];
      c.out_dir = pos[1];
      break;
    case Command::kImport:
      exactly(2, pos.empty() ? "HF_DIR and OUT.h5" : "OUT.h5");
      c.hf_dir = pos[0];
      c.out = pos[1];
      break;
    default:
      break;
  }
}

}  // namespace

std::string command_name(Command command) {
  switch (command) {
    case Command::kHelp: return "--help";
    case Command::kVersion: return "--version";
    default: break;
  }
  const CommandSpec* s = find_command(command);
  return s ? s->name : "";
}

std::string command_usage(Command command) {
  const CommandSpec* s = find_command(command);
  if (s == nullptr) return "ringtrain --help | --version";
  return "ringtrain " + s->name + " " + s->synopsis;
}

std::string usage_text() {
  std::string t =
      "ringtrain: train long-context transformers with ring attention, Ulysses, tensor and data "
      "parallelism.\n\nUsage (launch under mpirun -np N for N ranks):\n";
  for (const auto& s : commands()) {
    t += "  ringtrain " + s.name + " " + s.synopsis + "\n      " + s.help + "\n";
    for (const auto& f : s.flags) {
      std::string head = f.name + (f.value_name.empty() ? "" : " " + f.value_name);
      if (head.size() < 22) head.resize(22, ' ');
      t += "        " + head + " " + f.help + "\n";
    }
  }
  t +=
      "  ringtrain --help | -h      this text (ringtrain COMMAND --help: that command)\n"
      "  ringtrain --version        the version\n\n"
      "A flag's value may also follow '=' (--set=train.lr=3e-4). Config keys: docs/CONFIG.md.\n"
      "Exit codes: 0 success, 2 bad input (config, command line, data, checkpoint), other: a "
      "fault that aborted the job.\n";
  return t;
}

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine c;
  if (args.empty())
    input_error("missing command: one of ", joined_names(), " (try 'ringtrain --help')");
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    c.command = Command::kHelp;
    if (first == "help" && args.size() > 1) c.help_topic = args[1];
    return c;
  }
  if (first == "--version") {
    c.command = Command::kVersion;
    return c;
  }
  if (first.size() > 1 && first[0] == '-')
    input_error("unknown option '", first, "'",
                did_you_mean(first, {"--help", "--version"}),
                "; the first argument is a command: one of ", joined_names());

  const CommandSpec* spec = nullptr;
  for (const auto& s : commands())
    if (s.name == first) spec = &s;
  if (spec == nullptr)
    input_error("unknown command '", first, "'", did_you_mean(first, command_names()),
                "; commands: ", joined_names(), " (try 'ringtrain --help')");
  c.command = spec->command;

  std::vector<std::string> positionals;
  std::set<std::string> seen_flags;
  bool only_positionals = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positionals || a.size() < 2 || a[0] != '-') {
      positionals.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      CommandLine help;
      help.command = Command::kHelp;
      help.help_topic = spec->name;
      return help;
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const FlagSpec* flag = nullptr;
    for (const auto& f : spec->flags)
      if (f.name == name) flag = &f;
    if (flag == nullptr) {
      std::vector<std::string> names;
      for (const auto& f : spec->flags) names.push_back(f.name);
      usage_error(*spec, "unknown flag '" + name + "'" + did_you_mean(name, names));
    }
    std::string value;
    if (flag->value_name.empty()) {
      if (eq != std::string::npos) usage_error(*spec, name + " takes no value, got '" + a + "'");
      if (!seen_flags.insert(name).second) usage_error(*spec, name + " given twice");
    } else if (eq != std::string::npos) {
      value = a.substr(eq + 1);
    } else {
      if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
        usage_error(*spec, name + " needs a value (" + name + " " + flag->value_name + ")");
      value = args[++i];
    }
    flag->apply(c, value, name);
  }
  assign_positionals(c, *spec, positionals);
  return c;
}

CommandLine parse_command_line(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_command_line(args);
}

}  // namespace ringtrain
