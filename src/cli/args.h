// The command line, parsed into a plain struct (no MPI, no files opened: every rank parses the
// same argv and gets the same answer). Bad usage is an input error (exit 2) with a one-line
// message that suggests the nearest subcommand or flag.
//
//   ringtrain train CONFIG [--set k=v]... [--dry-run]
//   ringtrain eval CONFIG [--checkpoint P] [--data TOKENS.bin] [--set k=v]... [--needle]
//                  [--lengths a,b] [--depths x,y] [--samples N] [--no-cross-rank]
//   ringtrain attend CONFIG [--checkpoint P] (--text "..." | --text-file F | --data TOKENS
//                    --sample I | --needle --length L --depth D) [--layers a,b] [--heads a,b]
//                    [--rows last,needle,i,..] [--spans lo:hi,..] [--pool B] [--out F.h5]
//                    [--no-cross-rank]
//   ringtrain plan CONFIG [--set k=v]... --gpus N [--gpu h100|h200|a100|b200|cpu] [--max-context]
//                  [--search [--top K] [--json]] [--gpus-per-node 8] [--intra-bw GB/s]
//                  [--inter-bw GB/s] [--latency-us US] [--gemm-tflops T] [--attn-fwd-tflops T]
//                  [--attn-bwd-tflops T] [--memory-gib G]
//   ringtrain config CONFIG [--set k=v]...
//   ringtrain prepare-text FILES... --out X.bin [--val-fraction F] [--width 16|32]
//                          [--doc-separator REGEX]
//   ringtrain inspect CKPT
//   ringtrain export CKPT OUT_DIR
//   ringtrain import HF_DIR OUT.h5
//   ringtrain --help | -h ;  ringtrain --version
//
// A flag's value may follow as the next argument or after '=' (--set k=v, --set=k=v).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ringtrain {

enum class Command {
  kHelp,         // --help / -h, also `ringtrain SUBCOMMAND --help`
  kVersion,      // --version
  kTrain,
  kEval,
  kAttend,       // attention maps of a checkpoint (src/eval/attend_command.h)
  kPlan,         // memory per rank of the config's layout at N GPUs, without launching
  kConfig,       // print the resolved config as YAML
  kPrepareText,  // text files -> token file
  kInspect,      // describe a checkpoint
  kExport,       // checkpoint -> Hugging Face directory
  kImport,       // Hugging Face directory -> checkpoint
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
  bool search = false;         // --search: every layout that fits, ranked by predicted tokens/s
  bool json = false;           // --json: the search as JSON
  int top = 10;                // --top K: rows of the search's table
  int gpus_per_node = 8;       // --gpus-per-node: which groups stay on a node's links
  // Overrides of the GPU kind's figures (src/plan/gpu_kinds.h); < 0: the table's.
  double intra_bw = -1, inter_bw = -1, latency_us = -1;  // GB/s, GB/s, microseconds
  double gemm_tflops = -1, attn_fwd_tflops = -1, attn_bwd_tflops = -1;
  double memory_gib = -1;      // --memory-gib: memory per GPU (GiB) instead of the kind's

  // eval; inspect and export also put their CKPT here
  std::string checkpoint;  // "" : the newest in checkpoint.dir
  std::string data;        // token file to evaluate on ("" : the config's data)
  bool needle = false;     // needle-in-a-haystack sweep over lengths x depths
  std::vector<int64_t> lengths;  // context lengths for --needle ("" : the command's default)
  std::vector<double> depths;    // needle depths in [0, 1] ("" : the command's default)
  int samples = 0;               // samples per (length, depth) cell; 0: the command's default
  bool cross_rank = true;        // --no-cross-rank: attention limited to each rank's own tokens (control)

  // attend (also --checkpoint, --data, --needle, --no-cross-rank, --set; --out the HDF5 file)
  std::string text;               // the prompt, through the byte tokenizer
  std::string text_file;          // the same, from a file
  int64_t sample = -1;            // --data: which seq_len window of the token file
  int64_t length = 0;             // --needle: prompt length (0: train.seq_len)
  double depth = 0.5;             // --needle: needle depth in [0, 1]
  std::vector<int> layers;        // "" : all
  std::vector<int> heads;         // "" : all
  std::vector<std::string> rows;  // "last", "needle" or positions; "" : last
  std::vector<std::pair<int64_t, int64_t>> spans;  // extra key spans [lo, hi)
  int pool = 0;                   // 0: the command's default

  // prepare-text
  std::vector<std::string> inputs;  // text files
  std::string out;                  // token file to write (import: the checkpoint)
  double val_fraction = 0.0;        // tail fraction written to a separate validation file
  int width = 16;                   // token width in bits: 16 or 32
  std::string doc_separator;        // regex ending a document within a file; "": files only

  // export
  std::string out_dir;
  // import
  std::string hf_dir;
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
