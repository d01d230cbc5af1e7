// The command line: every subcommand's arguments land in the right fields, and bad usage is an
// input error (exit 2) with a one-line message that names the problem and suggests a fix.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/cli/args.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

CommandLine parse(const std::vector<std::string>& args) { return parse_command_line(args); }

// The message of the input error that parsing `args` throws.
std::string usage_error(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput) << e.what();
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
    return m;
  }
  ADD_FAILURE() << "expected an input error";
  return "";
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "message: " << message << "\n  lacks: " << p;
}

// Catches: argv[0] taken as the command, or argv not copied whole.
TEST(CliArgs, ArgcArgv) {
  const char* argv[] = {"ringtrain", "train", "c.yaml", "--dry-run"};
  CommandLine c = parse_command_line(4, const_cast<char**>(argv));
  EXPECT_EQ(c.command, Command::kTrain);
  EXPECT_EQ(c.config_path, "c.yaml");
  EXPECT_TRUE(c.dry_run);
}

// Catches: overrides lost or reordered (the last --set must win), --set=k=v split at the
// wrong '=', flags accepted only after the config.
TEST(CliArgs, Train) {
  CommandLine c = parse({"train", "--set", "train.lr=3e-4", "cfg.yaml", "--set=parallel.cp=2",
                         "--set", "data.val=", "--dry-run"});
  EXPECT_EQ(c.command, Command::kTrain);
  EXPECT_EQ(c.config_path, "cfg.yaml");
  EXPECT_EQ(c.overrides, (std::vector<std::string>{"train.lr=3e-4", "parallel.cp=2", "data.val="}));
  EXPECT_TRUE(c.dry_run);
  CommandLine d = parse({"train", "cfg.yaml"});
  EXPECT_FALSE(d.dry_run);
  EXPECT_TRUE(d.overrides.empty());
}

// Catches: eval's options parsed into the wrong fields, or lists split wrongly.
TEST(CliArgs, Eval) {
  CommandLine c = parse({"eval", "cfg.yaml", "--checkpoint", "ck/step_100.h5", "--data=val.bin",
                         "--set", "train.seq_len=4096", "--needle", "--lengths", "1k,4096,16K",
                         "--depths=0,0.5,1", "--samples", "7", "--no-cross-rank"});
  EXPECT_EQ(c.command, Command::kEval);
  EXPECT_EQ(c.config_path, "cfg.yaml");
  EXPECT_EQ(c.checkpoint, "ck/step_100.h5");
  EXPECT_EQ(c.data, "val.bin");
  EXPECT_EQ(c.overrides, (std::vector<std::string>{"train.seq_len=4096"}));
  EXPECT_TRUE(c.needle);
  EXPECT_EQ(c.lengths, (std::vector<int64_t>{1024, 4096, 16384}));
  EXPECT_EQ(c.depths, (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_EQ(c.samples, 7);
  EXPECT_FALSE(c.cross_rank);
  CommandLine d = parse({"eval", "cfg.yaml"});
  EXPECT_TRUE(d.cross_rank);
  EXPECT_FALSE(d.needle);
  EXPECT_EQ(d.samples, 0);
  EXPECT_TRUE(d.checkpoint.empty());
}

// Catches an attend flag stored in the wrong field or a bad --rows entry accepted.
TEST(CliArgs, Attend) {
  CommandLine c = parse({"attend", "cfg.yaml", "--checkpoint", "ck", "--needle", "--length", "16k", "--depth",
                         "0.25", "--layers", "0,3", "--heads=1,2", "--rows", "last,needle,7", "--spans", "0:4,10:20", "--pool", "64",
                         "--out", "a.h5", "--no-cross-rank"});
  EXPECT_EQ(c.command, Command::kAttend);
  EXPECT_EQ(c.config_path, "cfg.yaml");
  EXPECT_EQ(c.checkpoint, "ck");
  EXPECT_TRUE(c.needle);
  EXPECT_EQ(c.length, 16384);
  EXPECT_EQ(c.depth, 0.25);
  EXPECT_EQ(c.layers, (std::vector<int>{0, 3}));
  EXPECT_EQ(c.heads, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.rows, (std::vector<std::string>{"last", "needle", "7"}));
  EXPECT_EQ(c.pool, 64);
  EXPECT_EQ(c.spans, (std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {10, 20}}));
  EXPECT_EQ(c.out, "a.h5");
  EXPECT_FALSE(c.cross_rank);
  CommandLine t = parse({"attend", "cfg.yaml", "--text", "hello", "--data", "x.bin", "--sample", "3"});
  EXPECT_EQ(t.text, "hello");
  EXPECT_EQ(t.data, "x.bin");
  EXPECT_EQ(t.sample, 3);
  expect_contains(usage_error({"attend", "cfg.yaml", "--rows", "last,first"}), {"--rows", "first"});
  expect_contains(usage_error({"attend", "cfg.yaml", "--pool", "0"}), {"--pool"});
  expect_contains(usage_error({"attend", "cfg.yaml", "--spans", "5:5"}), {"--spans", "lo < hi"});
  expect_contains(usage_error({"attend", "cfg.yaml", "--depth", "2"}), {"--depth", "[0, 1]"});
}

TEST(CliArgs, ConfigInspectExport) {
  CommandLine c = parse({"config", "cfg.yaml", "--set", "device=cpu"});
  EXPECT_EQ(c.command, Command::kConfig);
  EXPECT_EQ(c.config_path, "cfg.yaml");
  EXPECT_EQ(c.overrides, (std::vector<std::string>{"device=cpu"}));
  CommandLine i = parse({"inspect", "ck.h5"});
  EXPECT_EQ(i.command, Command::kInspect);
  EXPECT_EQ(i.checkpoint, "ck.h5");
  CommandLine e = parse({"export", "ck.h5", "out/hf"});
  EXPECT_EQ(e.command, Command::kExport);
  EXPECT_EQ(e.checkpoint, "ck.h5");
  EXPECT_EQ(e.out_dir, "out/hf");
  CommandLine m = parse({"import", "hf/llama", "model.h5"});
  EXPECT_EQ(m.command, Command::kImport);
  EXPECT_EQ(m.hf_dir, "hf/llama");
  EXPECT_EQ(m.out, "model.h5");
}

// Catches: input files and the output confused, the defaults of width/val-fraction changed, or
// the document separator lost or altered.
TEST(CliArgs, PrepareText) {
  CommandLine c = parse({"prepare-text", "a.txt", "b.txt", "--out", "x.bin", "--val-fraction",
                         "0.05", "--width=32", "c.txt"});
  EXPECT_EQ(c.command, Command::kPrepareText);
  EXPECT_EQ(c.inputs, (std::vector<std::string>{"a.txt", "b.txt", "c.txt"}));
  EXPECT_EQ(c.out, "x.bin");
  EXPECT_DOUBLE_EQ(c.val_fraction, 0.05);
  EXPECT_EQ(c.width, 32);
  CommandLine d = parse({"prepare-text", "a.txt", "--out=x.bin"});
  EXPECT_EQ(d.width, 16);
  EXPECT_EQ(d.val_fraction, 0.0);
  EXPECT_EQ(d.doc_separator, "");
  // The separator reaches prepare-text verbatim (regex escapes untouched).
  CommandLine s = parse({"prepare-text", "a.txt", "--out=x.bin", "--doc-separator", "\\n\\n+"});
  EXPECT_EQ(s.doc_separator, "\\n\\n+");
  // After "--" everything is a file, even names that look like flags.
  CommandLine e = parse({"prepare-text", "--out", "x.bin", "--", "--weird.txt"});
  EXPECT_EQ(e.inputs, (std::vector<std::string>{"--weird.txt"}));
}

TEST(CliArgs, HelpAndVersion) {
  EXPECT_EQ(parse({"--help"}).command, Command::kHelp);
  EXPECT_EQ(parse({"-h"}).command, Command::kHelp);
  EXPECT_EQ(parse({"--version"}).command, Command::kVersion);
  CommandLine h = parse({"train", "--help"});
  EXPECT_EQ(h.command, Command::kHelp);
  EXPECT_EQ(h.help_topic, "train");
  // --help wins over an otherwise incomplete command line.
  EXPECT_EQ(parse({"export", "-h"}).command, Command::kHelp);
  const std::string u = usage_text();
  for (const char* s : {"ringtrain train CONFIG", "ringtrain eval CONFIG", "ringtrain config CONFIG",
                        "ringtrain prepare-text FILES", "ringtrain inspect CKPT",
                        "ringtrain export CKPT OUT_DIR", "--version", "--set", "--dry-run",
                        "--checkpoint", "--data", "--needle", "--lengths", "--depths", "--samples",
                        "--no-cross-rank", "--out", "--val-fraction", "--width"})
    EXPECT_NE(u.find(s), std::string::npos) << s;
  EXPECT_EQ(command_usage(Command::kTrain), "ringtrain train CONFIG [--set k=v]... [--dry-run]");
  EXPECT_EQ(command_name(Command::kPrepareText), "prepare-text");
}

// Catches: bad usage that crashes, is ignored, or is reported without a hint.
TEST(CliArgs, BadUsage) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {{}, {"missing command", "train", "--help"}},
      {{"trian", "c.yaml"}, {"unknown command 'trian'", "did you mean 'train'?"}},
      {{"evaluate", "c.yaml"}, {"unknown command 'evaluate'", "commands: train, eval"}},
      {{"prepare_text", "a"}, {"did you mean 'prepare-text'?"}},
      {{"--verison"}, {"unknown option '--verison'", "did you mean '--version'?"}},
      {{"train"}, {"ringtrain train: missing CONFIG", "usage: ringtrain train CONFIG"}},
      {{"train", "a.yaml", "b.yaml"}, {"unexpected argument 'b.yaml'"}},
      {{"train", "c.yaml", "--dryrun"}, {"unknown flag '--dryrun'", "did you mean '--dry-run'?"}},
      {{"train", "c.yaml", "--checkpoint", "x"}, {"ringtrain train: unknown flag '--checkpoint'"}},
      {{"eval", "c.yaml", "--chekpoint", "x"}, {"unknown flag '--chekpoint'", "did you mean '--checkpoint'?"}},
      {{"train", "c.yaml", "--set"}, {"--set needs a value"}},
      {{"train", "c.yaml", "--set", "--dry-run"}, {"--set needs a value"}},
      {{"train", "c.yaml", "--set="}, {"--set needs section.key=value"}},
      {{"train", "c.yaml", "--dry-run=yes"}, {"--dry-run takes no value"}},
      {{"eval", "c.yaml", "--samples", "1.5"}, {"--samples expects a non-negative integer", "'1.5'"}},
      {{"eval", "c.yaml", "--samples", "0"}, {"--samples expects an integer >= 1"}},
      {{"eval", "c.yaml", "--lengths", "1k,,2k"}, {"--lengths expects a comma-separated list"}},
      {{"eval", "c.yaml", "--lengths", "1k,abc"}, {"--lengths expects a non-negative integer", "'abc'"}},
      {{"eval", "c.yaml", "--lengths", "0"}, {"--lengths expects positive lengths"}},
      {{"eval", "c.yaml", "--depths", "0.5,1.5"}, {"--depths expects depths in [0, 1]", "'1.5'"}},
      {{"eval", "c.yaml", "--checkpoint", "a", "--checkpoint", "b"}, {"--checkpoint given twice"}},
      {{"prepare-text", "a.txt"}, {"missing --out"}},
      {{"prepare-text", "--out", "x.bin"}, {"missing FILES"}},
      {{"prepare-text", "a.txt", "--out", "x.bin", "--width", "8"}, {"--width must be 16 or 32", "'8'"}},
      {{"prepare-text", "a.txt", "--out", "x.bin", "--val-fraction", "1"},
       {"--val-fraction expects a fraction in [0, 1)"}},
      {{"prepare-text", "a.txt", "--out", "x.bin", "--val-fraction", "lots"},
       {"--val-fraction expects a number"}},
      {{"inspect"}, {"ringtrain inspect: missing CKPT"}},
      {{"export", "ck.h5"}, {"ringtrain export: missing OUT_DIR", "usage: ringtrain export CKPT OUT_DIR"}},
      {{"export"}, {"missing CKPT and OUT_DIR"}},
      {{"import", "hf"}, {"ringtrain import: missing OUT.h5", "usage: ringtrain import HF_DIR OUT.h5"}},
      {{"import"}, {"missing HF_DIR and OUT.h5"}},
      {{"import", "hf", "a.h5", "b.h5"}, {"unexpected argument 'b.h5'"}},
      {{"inspect", "a.h5", "--dry-run"}, {"ringtrain inspect: unknown flag '--dry-run'"}},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    SCOPED_TRACE("ringtrain " + joined);
    expect_contains(usage_error(c.args), c.parts);
  }
}

}  // namespace
}  // namespace ringtrain
