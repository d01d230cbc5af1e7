// The command line, parsed into a plain struct (no MPI, no files opened: every rank parses the
// same argv and gets the same answer). Bad usage is an input error (exit 2) with a one-line
// message that suggests the nearest subcommand or flag.
//
//   ringtrain train CONFIG [--set k=v]... [--dry-run]
//   ringtrain eval CONFIG [--checkpoint P] [--data TOKENS.bin] [--set k=v]... [--needle]
//                  [--lengths a,b] [--depths x,y] [--samples N] [--no-cross-rank]
//   ringtrain plan CONFIG [--set k=v]... --gpus N [--gpu h100|h200|a100|b200|cpu] [--max-context]
//   ringtrain config CONFIG [--set k=v]...
//   ringtrain prepare-text FILES... --out X.bin [--val-fraction F] [--width 16|32]
//                          [--doc-separator REGEX]
//   ringtrain inspect CKPT
//   ringtrain export CKPT OUT_DIR
//   ringtrain --help | -h ;  ringtrain --version
//
// A flag's value may follow as the next argument or after '=' (--set k=v, --set=k=v).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ringtrain {

enum class Command {
  kHelp,         // --help / -h, also `ringtrain SUBCOMMAND --help`
  kVersion,      // --version
  kTrain,
  kEval,
  kPlan,         // memory per rank of the config's layout at N GPUs, without launching
  kConfig,       // print the resolved config as YAML
  kPrepareText,  // text files -> token file
  kInspect,      // describe a checkpoint
  kExport,       // checkpoint -> Hugging Face directory
};

struct CommandLine {
  Command command = Command::kHelp;
  std::string help_topic;  // kHelp: the subcommand asked about ("" for the general help)

  // train, eval, plan, config
  std::string config_path;
  std::vector<std::string> overrides;  // "section.key=value", in command-line order
  bool dry_run = false;                // train

  // plan
  int gpus = 0;                // --gpus N: the job's size (required)
  std::string gpu = "h100";    // --gpu KIND (src/plan/gpu_kinds.h)
  bool max_context = false;    // --max-context: the longest train.seq_len that fits

  // eval; inspect and export also put their CKPT here
  std::string checkpoint;  // "" : the newest in checkpoint.dir
  std::string data;        // token file to evaluate on ("" : the config's data)
  bool needle = false;     // needle-in-a-haystack sweep over lengths x depths
  std::vector<int64_t> lengths;  // context lengths for --needle ("" : the command's default)
  std::vector<double> depths;    // needle depths in [0, 1] ("" : the command's default)
  int samples = 0;               // samples per (length, depth) cell; 0: the command's default
  bool cross_rank = true;        // --no-cross-rank: attention limited to each rank's own tokens (control)

  // prepare-text
  std::vector<std::string> inputs;  // text files
  std::string out;                  // token file to write
  double val_fraction = 0.0;        // tail fraction written to a separate validation file
  int width = 16;                   // token width in bits: 16 or 32
  std::string doc_separator;        // regex ending a document within a file; "": files only

  // export
  std::string out_dir;
};

// Parses argv (argv[0] is the program). Throws an input error on bad usage.
CommandLine parse_command_line(int argc, char** argv);
// Same, from the arguments after the program name (tests).
CommandLine parse_command_line(const std::vector<std::string>& args);

// The text of --help: every subcommand with its flags.
std::string usage_text();
// The usage lines of one subcommand ("ringtrain train CONFIG [--set k=v]... [--dry-run]").
std::string command_usage(Command command);
// "train", "prepare-text", ...
std::string command_name(Command command);

}  // namespace ringtrain
