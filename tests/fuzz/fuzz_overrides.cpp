// libFuzzer target: the command line and its `--set section.key=value` overrides. The input's
// lines are the arguments after the program name (parse_command_line), and again the overrides
// applied to the test-tiny config (parse_config).
// Catches: crashes and non-input exceptions in argument splitting, '=' handling, numeric
// conversion of override values (overflow, trailing junk) and key lookup with suggestions.
#include <cstdint>
#include <string>
#include <vector>

#include "src/cli/args.h"
#include "src/config/config.h"
#include "tests/fuzz/fuzz_common.h"

namespace {
// A small valid config (as configs/test-tiny.yaml) the overrides are applied to.
const char kBase[] =
    "device: cpu\n"
    "run: {name: fuzz, out_dir: runs/fuzz, seed: 1234, threads: 1}\n"
    "model: {vocab_size: 256, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2}\n"
    "parallel: {dp: 1, cp: 1, tp: 1, cp_mode: ring}\n"
    "train: {seq_len: 64, micro_batch: 2, steps: 20}\n"
    "data: {task: passkey, passkey_digits: 3}\n"
    "checkpoint: {dir: \"\", resume: none}\n"
    "log: {every: 1, progress: never, tensorboard: false}\n";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringtrain;
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  fuzz::expect_ok_or_input_error("fuzz_overrides", [&] { parse_command_line(lines); });
  fuzz::expect_ok_or_input_error("fuzz_overrides", [&] {
    std::vector<std::string> args = {"train", "x.yaml"};
    for (const std::string& l : lines) {
      args.push_back("--set");
      args.push_back(l);
    }
    parse_command_line(args);
  });
  fuzz::expect_ok_or_input_error("fuzz_overrides",
                                 [&] { parse_config(kBase, "base.yaml", lines, ConfigChecks{.paths = false}); });
  return 0;
}
