// data/: token files, the byte tokenizer, prepare-text, the deterministic samplers and the
// synthetic tasks. Each test names the bug it would catch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/prepare_text.h"
#include "data/token_file.h"
#include "data/tokenizer.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

namespace fs = std::filesystem;

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rt_test_data_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
  }
  static std::string read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
};

// Runs f, expects an input error whose message contains every one of `parts`.
void expect_input_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one containing \"" << parts.front() << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput) << e.what();
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

std::vector<uint32_t> random_tokens(uint64_t seed, size_t n, uint32_t vocab) {
  SampleRng rng(seed);
  std::vector<uint32_t> t(n);
  for (uint32_t& x : t) x = static_cast<uint32_t>(rng.below(vocab));
  return t;
}

Config text_config(const std::string& train, const std::string& val = "") {
  Config c;
  c.data.task = "text";
  c.data.train = train;
  c.data.val = val;
  c.train.seq_len = 64;
  c.model.vocab_size = 256;
  c.run.seed = 7;
  return c;
}

bool same(const Sample& a, const Sample& b) {
  return a.inputs == b.inputs && a.targets == b.targets && a.answer == b.answer;
}

// ---- token files --------------------------------------------------------------------------

// Catches: wrong byte order or width handling, header fields lost, vocab_size not recorded,
// read() offset errors.
TEST_F(DataTest, TokenFileRoundTripsBothWidths) {
  for (int width : {2, 4}) {
    const uint64_t seed = 100 + width;
    SCOPED_TRACE("width " + std::to_string(width) + " seed " + std::to_string(seed));
    const uint32_t vocab = width == 2 ? 65536 : 200000;
    std::vector<uint32_t> tokens = random_tokens(seed, 10007, vocab - 1);
    tokens[1234] = vocab - 1;  // the largest id the width can carry (for width 2)
    const std::string p = path("t" + std::to_string(width) + ".bin");
    write_token_file(p, tokens, width);
    EXPECT_FALSE(fs::exists(p + ".partial"));
    EXPECT_EQ(fs::file_size(p), kTokenFileHeaderBytes + tokens.size() * width);

    TokenFile f = TokenFile::open(p);
    EXPECT_EQ(f.size(), tokens.size());
    EXPECT_EQ(f.width(), width);
    EXPECT_EQ(f.vocab_size(), vocab);
    for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(f[i], tokens[i]) << "token " << i;
    std::vector<int32_t> out(500);
    f.read(777, 500, out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(uint32_t(out[i]), tokens[777 + i]);

    // Move keeps the mapping valid.
    TokenFile g = std::move(f);
    EXPECT_EQ(g[1234], vocab - 1);
  }
}

// Catches: an empty corpus producing an unreadable file.
TEST_F(DataTest, TokenFileEmpty) {
  write_token_file(path("e.bin"), {}, 2);
  TokenFile f = TokenFile::open(path("e.bin"));
  EXPECT_EQ(f.size(), 0u);
  EXPECT_EQ(f.vocab_size(), 0u);
}

// Catches: ids silently wrapped to 16 bits.
TEST_F(DataTest, TokenFileRejectsIdsTooWideForWidth) {
  expect_input_error(
      [&] {
        write_token_file(path("w.bin"), {1, 70000}, 2);
      },
      {"70000", "width of 4"});
  expect_input_error([&] { write_token_file(path("w.bin"), {1}, 3); }, {"must be 2 or 4"});
}

// Catches: bad files read as garbage tokens, crashes on short files, or messages that do not
// say which file and what is wrong (the "bad data" requirement).
TEST_F(DataTest, BadTokenFilesAreInputErrorsNamingTheProblem) {
  const std::string good = path("good.bin");
  write_token_file(good, std::vector<uint32_t>(1000, 65), 2);
  const std::string bytes = read_bytes(good);

  expect_input_error([&] { TokenFile::open(path("missing.bin"), "data.train"); },
                     {"data.train", "missing.bin", "cannot open", "No such file"});

  write_token_file(path("short.bin"), {}, 2);
  write_bytes(path("short.bin"), bytes.substr(0, 10));
  expect_input_error([&] { TokenFile::open(path("short.bin")); },
                     {"short.bin", "10 bytes", "32-byte header"});

  std::string magic = bytes;
  magic.replace(0, 8, "GPT2TOKS");
  write_bytes(path("magic.bin"), magic);
  expect_input_error([&] { TokenFile::open(path("magic.bin"), "data.val"); },
                     {"data.val", "magic.bin", "wrong magic", "GPT2TOKS"});

  std::string version = bytes;
  version[8] = 7;
  write_bytes(path("version.bin"), version);
  expect_input_error([&] { TokenFile::open(path("version.bin")); },
                     {"version.bin", "version 7", "reads version 1"});

  std::string width = bytes;
  width[12] = 3;
  write_bytes(path("width.bin"), width);
  expect_input_error([&] { TokenFile::open(path("width.bin")); }, {"width.bin", "token width 3"});

  write_bytes(path("trunc.bin"), bytes.substr(0, kTokenFileHeaderBytes + 1500));
  expect_input_error([&] { TokenFile::open(path("trunc.bin"), "data.train"); },
                     {"data.train: " + path("trunc.bin") +
                      " is truncated: header says 1000 tokens (2000 bytes) but 1500 bytes follow"});

  write_bytes(path("long.bin"), bytes + "xyz");
  expect_input_error([&] { TokenFile::open(path("long.bin")); },
                     {"long.bin", "2003 bytes follow", "3 extra bytes"});

  // A count so large that count * width overflows 64 bits must still read as truncated.
  std::string huge = bytes;
  for (int i = 16; i < 24; ++i) huge[i] = '\xff';
  write_bytes(path("huge.bin"), huge);
  expect_input_error([&] { TokenFile::open(path("huge.bin")); }, {"huge.bin", "truncated"});

  expect_input_error([&] { TokenFile::open(dir_.string()); }, {"not a regular file"});
}

// ---- tokenizer and prepare-text -----------------------------------------------------------

// Catches: sign extension of bytes >= 128, lost bytes (NUL, newlines), vocab > 256.
TEST(Tokenizer, ByteLevelRoundTrip) {
  std::string text = "Hello, wörld!\n\tcafé ☕";
  for (int b = 0; b < 256; ++b) text += static_cast<char>(b);
  std::vector<uint32_t> t = ByteTokenizer::encode(text);
  ASSERT_EQ(t.size(), text.size());
  for (uint32_t x : t) EXPECT_LT(x, ByteTokenizer::kVocabSize);
  EXPECT_EQ(t[0], uint32_t('H'));
  EXPECT_EQ(ByteTokenizer::decode(t), text);
  const std::vector<int32_t> s = {72, 105, 300, -1};
  EXPECT_EQ(ByteTokenizer::decode(s.data(), s.size()), "Hi??");
}

// Catches: wrong split point, lost or duplicated tokens between train and val, documents run
// together, val file name not the documented one.
TEST_F(DataTest, PrepareTextSplitsTrainAndVal) {
  write_bytes(path("a.txt"), "In the beginning was the text.\nSecond line");
  write_bytes(path("b.txt"), "Another file.\n");
  std::ostringstream log;
  const std::string out = path("sub/corpus.bin");
  PrepareTextResult r = prepare_text({path("a.txt"), path("b.txt")}, out, 0.25, 2, &log);
  const std::string all = "In the beginning was the text.\nSecond line\nAnother file.\n";
  EXPECT_EQ(r.val_path, path("sub/corpus.val.bin"));
  EXPECT_EQ(r.train_tokens + r.val_tokens, all.size());
  EXPECT_EQ(r.val_tokens, uint64_t(std::llround(0.25 * all.size())));

  TokenFile train = TokenFile::open(out);
  TokenFile val = TokenFile::open(r.val_path);
  EXPECT_EQ(train.width(), 2);
  std::vector<int32_t> t(train.size()), v(val.size());
  train.read(0, t.size(), t.data());
  val.read(0, v.size(), v.data());
  EXPECT_EQ(ByteTokenizer::decode(t.data(), t.size()) + ByteTokenizer::decode(v.data(), v.size()),
            all);
  const std::string line = log.str();
  EXPECT_NE(line.find("corpus.bin"), std::string::npos) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;

  // No val fraction: one file, no .val.bin.
  PrepareTextResult r2 = prepare_text({path("b.txt")}, path("only.bin"), 0.0, 4, nullptr);
  EXPECT_TRUE(r2.val_path.empty());
  EXPECT_FALSE(fs::exists(path("only.val.bin")));
  EXPECT_EQ(TokenFile::open(path("only.bin")).width(), 4);
  EXPECT_EQ(val_path_for("x/corpus"), "x/corpus.val.bin");
}

// Catches: a missing input file crashing or writing an empty corpus.
TEST_F(DataTest, PrepareTextErrors) {
  write_bytes(path("a.txt"), "text\n");
  expect_input_error([&] { prepare_text({path("nope.txt")}, path("o.bin"), 0.1, 2, nullptr); },
                     {"nope.txt", "cannot read"});
  expect_input_error([&] { prepare_text({}, path("o.bin"), 0.1, 2, nullptr); }, {"no input"});
  expect_input_error([&] { prepare_text({path("a.txt")}, path("o.bin"), 1.0, 2, nullptr); },
                     {"--val-fraction"});
  expect_input_error([&] { prepare_text({path("a.txt")}, path("o.bin"), 0.1, 8, nullptr); },
                     {"--width"});
  write_bytes(path("empty.txt"), "");
  expect_input_error([&] { prepare_text({path("empty.txt")}, path("o.bin"), 0.0, 2, nullptr); },
                     {"no text"});
}

// ---- the text sampler ---------------------------------------------------------------------

// Catches: a model whose embedding is smaller than the data's ids (out-of-bounds reads).
TEST_F(DataTest, VocabularyMismatch) {
  std::vector<uint32_t> tokens = random_tokens(3, 5000, 256);
  tokens[42] = 300;
  write_token_file(path("big.bin"), tokens, 2);
  write_token_file(path("ok.bin"), random_tokens(4, 5000, 256), 2);
  expect_input_error(
      [&] { make_dataset(text_config(path("big.bin")), Split::kTrain); },
      {"vocabulary mismatch: data.train", "has token ids up to 300", "model.vocab_size is 256"});
  expect_input_error(
      [&] { make_dataset(text_config(path("ok.bin"), path("big.bin")), Split::kVal); },
      {"vocabulary mismatch: data.val", "up to 300"});
  Config c = text_config(path("big.bin"));
  c.model.vocab_size = 301;
  EXPECT_EQ(make_dataset(c, Split::kTrain)->min_vocab(), 301);

  Config synth;
  synth.data.task = "passkey";
  synth.model.vocab_size = 100;
  expect_input_error([&] { make_dataset(synth, Split::kTrain); }, {"vocabulary mismatch"});
}

// Catches: targets not shifted by one, windows not contiguous in the file, held-out tail leaking
// into training windows (or val windows outside it).
TEST_F(DataTest, TextWindowsAndHeldOutTail) {
  const uint64_t n = 20000;
  std::vector<uint32_t> tokens(n);
  for (uint64_t i = 0; i < n; ++i) tokens[i] = uint32_t(i);  // position == token id
  write_token_file(path("pos.bin"), tokens, 4);
  Config c = text_config(path("pos.bin"));
  c.model.vocab_size = int(n);
  auto train = make_dataset(c, Split::kTrain);
  auto val = make_dataset(c, Split::kVal);
  EXPECT_FALSE(train->has_accuracy());
  const int seq = 64;
  const uint64_t tail = n - n / 10;
  Sample s;
  for (uint64_t i = 0; i < 300; ++i) {
    train->sample(5, i, seq, &s);
    ASSERT_EQ(s.inputs.size(), size_t(seq));
    for (int j = 0; j < seq; ++j) {
      ASSERT_EQ(s.inputs[j], s.inputs[0] + j);
      ASSERT_EQ(s.targets[j], s.inputs[j] + 1);
      ASSERT_EQ(s.answer[j], 0);
    }
    EXPECT_LE(uint64_t(s.targets.back()), tail - 1) << "training window enters the val tail";
    val->sample(5, i, seq, &s);
    EXPECT_GE(uint64_t(s.inputs.front()), tail) << "val window outside the held-out tail";
    EXPECT_LE(uint64_t(s.targets.back()), n - 1);
  }

  // Too little text for the sequence length: an input error before training.
  write_token_file(path("tiny.bin"), random_tokens(5, 50, 256), 2);
  expect_input_error([&] { make_dataset(text_config(path("tiny.bin")), Split::kTrain); },
                     {"tiny.bin", "too few"});
  expect_input_error([&] { make_dataset(text_config(""), Split::kTrain); }, {"data.train"});
  Config bad = text_config(path("pos.bin"));
  bad.data.task = "poetry";
  expect_input_error([&] { make_dataset(bad, Split::kTrain); }, {"poetry"});
}

// Catches: a token id above the header's vocab_size (damaged file) reaching the embedding.
TEST_F(DataTest, TextRejectsTokensBeyondHeaderVocab) {
  write_token_file(path("v.bin"), std::vector<uint32_t>(200, 10), 2);
  std::string bytes = read_bytes(path("v.bin"));
  bytes[24] = 5;  // header vocab_size 11 -> 5
  write_bytes(path("v.bin"), bytes);
  Config c = text_config(path("v.bin"));
  auto ds = make_dataset(c, Split::kTrain);
  Sample s;
  expect_input_error([&] { ds->sample(0, 0, 64, &s); }, {"v.bin", "damaged"});
}

// ---- determinism --------------------------------------------------------------------------

std::vector<Config> all_task_configs(const std::string& text_file) {
  Config text = text_config(text_file);
  text.train.seq_len = 128;
  Config passkey;
  passkey.data.task = "passkey";
  passkey.train.seq_len = 128;
  passkey.run.seed = 7;
  Config recall;
  recall.data.task = "recall";
  recall.train.seq_len = 128;
  recall.run.seed = 7;
  Config hay = passkey;
  hay.data.train = text_file;
  return {text, passkey, recall, hay};
}

// Catches: samples that depend on a shared RNG's history, on the dataset instance, or that
// collide across index, step, seed or split (two replicas training on the same sample).
TEST_F(DataTest, SamplesArePureFunctionsOfSeedSplitStepIndex) {
  write_token_file(path("text.bin"), random_tokens(11, 30000, 256), 2);
  for (const Config& c : all_task_configs(path("text.bin"))) {
    SCOPED_TRACE("task " + c.data.task + (c.data.train.empty() ? "" : " with haystack"));
    auto a = make_dataset(c, Split::kTrain);
    auto b = make_dataset(c, Split::kTrain);
    Config other_seed = c;
    other_seed.run.seed = 8;
    auto d = make_dataset(other_seed, Split::kTrain);
    auto v = make_dataset(c, Split::kVal);
    Sample x, y;
    for (uint64_t step : {0ull, 1ull, 1000000007ull}) {
      for (uint64_t i = 0; i < 8; ++i) {
        a->sample(step, i, 128, &x);
        b->sample(step, i, 128, &y);
        EXPECT_TRUE(same(x, y)) << "step " << step << " index " << i;
        a->sample(step, i + 1, 128, &y);
        EXPECT_FALSE(same(x, y)) << "indices " << i << " and " << i + 1 << " coincide";
        a->sample(step + 1, i, 128, &y);
        EXPECT_FALSE(same(x, y)) << "steps " << step << " and " << step + 1 << " coincide";
        d->sample(step, i, 128, &y);
        EXPECT_FALSE(same(x, y)) << "seeds 7 and 8 coincide";
        v->sample(step, i, 128, &y);
        EXPECT_FALSE(same(x, y)) << "train and val coincide";
      }
    }
  }
}

// Catches: a layout that asks for samples in another order (other dp/grad_accum split, other
// rank) seeing other data.
TEST_F(DataTest, SamplesDoNotDependOnCallOrder) {
  write_token_file(path("text.bin"), random_tokens(12, 30000, 256), 2);
  for (const Config& c : all_task_configs(path("text.bin"))) {
    SCOPED_TRACE("task " + c.data.task);
    auto ds = make_dataset(c, Split::kTrain);
    std::vector<Sample> forward(24);
    for (int k = 0; k < 24; ++k) ds->sample(k / 8, k % 8, 128, &forward[k]);
    Sample s;
    for (int k = 23; k >= 0; --k) {
      ds->sample(99, k, 128, &s);  // unrelated calls in between
      ds->sample(k / 8, k % 8, 128, &s);
      EXPECT_TRUE(same(s, forward[k])) << "sample " << k;
    }
  }
}

// ---- passkey ------------------------------------------------------------------------------

// Catches: key at the wrong depth, answer mask off by one (marking the question, or missing a
// digit), wrong length, targets not the inputs shifted, the compact wording not used when the
// sentences would crowd out the haystack (or used when they fit).
TEST(Passkey, StructureAtExplicitDepths) {
  for (int seq_len : {64, 128, 159, 257, 1024}) {
    for (double depth : {0.0, 0.1, 0.25, 0.5, 0.9, 1.0}) {
      SCOPED_TRACE("seq_len " + std::to_string(seq_len) + " depth " + std::to_string(depth));
      PasskeySpec spec;
      spec.seq_len = seq_len;
      spec.key = "48213";
      spec.depth = depth;
      spec.seed = 99;
      Sample s;
      PasskeyInfo info = make_passkey(spec, &s);
      EXPECT_EQ(info.compact, seq_len < 159);  // full sentences: 80 tokens, half the prompt
      ASSERT_EQ(s.inputs.size(), size_t(seq_len));
      ASSERT_EQ(s.targets.size(), size_t(seq_len));
      ASSERT_EQ(s.answer.size(), size_t(seq_len));
      for (int i = 0; i + 1 < seq_len; ++i) ASSERT_EQ(s.targets[i], s.inputs[i + 1]);
      const std::string in = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
      const std::string sentence =
          info.compact ? "key 48213. " : "The pass key is 48213. Remember it. ";
      const std::string question =
          info.compact ? "\nkey? 4821" : "\nWhat is the pass key? The pass key is 4821";
      EXPECT_EQ(info.haystack_tokens, seq_len + 1 - int(sentence.size() + question.size()) - 1);

      // The key sentence where info says, at the claimed depth (moved back at most to the
      // start of a word).
      EXPECT_EQ(in.substr(info.key_sentence, sentence.size()), sentence);
      EXPECT_EQ(in.substr(info.key_digits, 5), "48213");
      const double want = depth * info.haystack_tokens;
      EXPECT_LE(info.key_sentence, want + 1e-9);
      EXPECT_GE(info.key_sentence, want - 32);
      EXPECT_EQ(in.find(sentence), size_t(info.key_sentence));

      // The question at the end; the answer positions predict exactly the key's digits.
      EXPECT_EQ(in.substr(info.question), question);
      EXPECT_EQ(answer_count(s), 5);
      for (int i = 0; i < seq_len; ++i) EXPECT_EQ(s.answer[i], i >= seq_len - 5 ? 1 : 0);
      EXPECT_EQ(info.answer_begin, seq_len - 5);
      std::string answer;
      for (int i = info.answer_begin; i < seq_len; ++i) answer += char(s.targets[i]);
      EXPECT_EQ(answer, "48213");
    }
  }
}

// Catches: the sampler ignoring passkey_digits or the depth range, or drawing the same key.
TEST(Passkey, DatasetDrawsKeysAndDepthsInRange) {
  Config c;
  c.data.task = "passkey";
  c.data.passkey_digits = 7;
  c.data.passkey_min_depth = 0.2;
  c.data.passkey_max_depth = 0.4;
  c.train.seq_len = 512;
  auto ds = make_dataset(c, Split::kTrain);
  EXPECT_TRUE(ds->has_accuracy());
  std::set<std::string> keys;
  std::regex key_re("The pass key is ([0-9]+)\\. Remember it\\.");
  Sample s;
  for (uint64_t i = 0; i < 50; ++i) {
    ds->sample(3, i, 512, &s);
    ASSERT_EQ(s.inputs.size(), 512u);
    EXPECT_EQ(answer_count(s), 7);
    const std::string in = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
    std::smatch m;
    ASSERT_TRUE(std::regex_search(in, m, key_re)) << in;
    const std::string key = m[1];
    EXPECT_EQ(key.size(), 7u);
    keys.insert(key);
    const int hay = 513 - 2 * 7 - 70;  // haystack tokens
    EXPECT_GE(m.position(0), 0.2 * hay - 32);
    EXPECT_LE(m.position(0), 0.4 * hay);
    std::string answer;
    for (int j = 512 - 7; j < 512; ++j) answer += char(s.targets[j]);
    EXPECT_EQ(answer, key);
    EXPECT_EQ(in.find("What is the pass key? The pass key is " + key.substr(0, 6)),
              in.size() - 38 - 6);
  }
  EXPECT_GT(keys.size(), 45u);
}

// Catches: a real-text haystack that is not a contiguous window of the file, or that ignores
// its range.
TEST_F(DataTest, PasskeyWithRealTextHaystack) {
  std::string text;
  for (int i = 0; text.size() < 20000; ++i) text += "verse " + std::to_string(i) + " of the book. ";
  write_bytes(path("book.txt"), text);
  prepare_text({path("book.txt")}, path("book.bin"), 0.0, 2, nullptr);
  TokenFile book = TokenFile::open(path("book.bin"));
  PasskeySpec spec;
  spec.seq_len = 1024;
  spec.key = "0123";
  spec.depth = 0.5;
  spec.seed = 5;
  spec.haystack = &book;
  spec.haystack_begin = 1000;
  spec.haystack_end = 5000;
  Sample s;
  PasskeyInfo info = make_passkey(spec, &s);
  const std::string in = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
  const std::string before = in.substr(0, info.key_sentence);
  const int key_text = 35;  // "The pass key is 0123. Remember it. "
  const std::string after =
      in.substr(info.key_sentence + key_text, info.question - info.key_sentence - key_text);
  const size_t at = text.find(before + after);
  ASSERT_NE(at, std::string::npos) << "haystack is not a contiguous window of the file";
  EXPECT_GE(at, 1000u);
  EXPECT_LE(at + before.size() + after.size(), 5000u);

  spec.haystack_end = 1100;
  expect_input_error([&] { make_passkey(spec, &s); }, {"book.bin", "fewer than"});
  std::vector<uint32_t> wide = random_tokens(1, 3000, 300);
  write_token_file(path("wide.bin"), wide, 2);
  TokenFile wide_file = TokenFile::open(path("wide.bin"));
  spec.haystack = &wide_file;
  spec.haystack_begin = spec.haystack_end = 0;
  expect_input_error([&] { make_passkey(spec, &s); }, {"byte-level"});
}

// Catches: bad needle parameters (issue 14's bad-input cases) crashing instead of erroring.
TEST(Passkey, BadSpecsAreInputErrors) {
  PasskeySpec spec;
  spec.seq_len = 256;
  spec.key = "12345";
  Sample s;
  spec.depth = 1.5;
  expect_input_error([&] { make_passkey(spec, &s); }, {"depth 1.5", "[0, 1]"});
  spec.depth = -0.1;
  expect_input_error([&] { make_passkey(spec, &s); }, {"depth"});
  spec.depth = 0.5;
  spec.key = "12a";
  expect_input_error([&] { make_passkey(spec, &s); }, {"digits"});
  spec.key = "12345";
  spec.seq_len = passkey_min_seq_len(5) - 1;
  expect_input_error([&] { make_passkey(spec, &s); }, {"too short"});
  spec.seq_len = passkey_min_seq_len(5);
  PasskeyInfo info = make_passkey(spec, &s);  // the shortest prompt works: no filler at all
  EXPECT_EQ(info.haystack_tokens, 0);

  Config c;
  c.data.task = "passkey";
  c.data.passkey_min_depth = 0.8;
  c.data.passkey_max_depth = 0.2;
  expect_input_error([&] { make_dataset(c, Split::kTrain); }, {"passkey_min_depth"});
  c.data.passkey_min_depth = 0.0;
  c.train.seq_len = 16;
  expect_input_error([&] { make_dataset(c, Split::kTrain); }, {"train.seq_len 16", "too short"});
}

// ---- recall -------------------------------------------------------------------------------

// Catches: a query key that is not among the pairs, an answer that is not its value, duplicate
// keys (ambiguous answers), wrong lengths or answer mask.
TEST(Recall, Structure) {
  Config c;
  c.data.task = "recall";
  c.data.recall_pairs = 6;
  c.train.seq_len = 300;
  auto ds = make_dataset(c, Split::kTrain);
  EXPECT_TRUE(ds->has_accuracy());
  std::regex pair_re(" ([a-z]{3}):([0-9]{2})");
  Sample s;
  for (uint64_t i = 0; i < 40; ++i) {
    SCOPED_TRACE("sample " + std::to_string(i));
    ds->sample(1, i, 300, &s);
    ASSERT_EQ(s.inputs.size(), 300u);
    ASSERT_EQ(s.targets.size(), 300u);
    for (int j = 0; j + 1 < 300; ++j) ASSERT_EQ(s.targets[j], s.inputs[j + 1]);
    std::string full = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
    full += char(s.targets.back());
    std::map<std::string, std::string> pairs;
    for (auto it = std::sregex_iterator(full.begin(), full.end(), pair_re);
         it != std::sregex_iterator(); ++it)
      EXPECT_TRUE(pairs.emplace((*it)[1], (*it)[2]).second) << "duplicate key " << (*it)[1];
    EXPECT_EQ(pairs.size(), 6u) << full;
    const size_t nl = full.rfind('\n');
    ASSERT_EQ(nl, full.size() - 7);
    const std::string query = full.substr(nl + 1, 3);
    ASSERT_EQ(full[nl + 4], ':');
    ASSERT_TRUE(pairs.count(query)) << "query " << query << " not among the pairs";
    EXPECT_EQ(full.substr(nl + 5), pairs[query]);
    EXPECT_EQ(answer_count(s), kRecallValueDigits);
    EXPECT_EQ(s.answer[298], 1);
    EXPECT_EQ(s.answer[299], 1);
    EXPECT_EQ(s.answer[297], 0);
  }
  c.train.seq_len = recall_min_seq_len(6) - 1;
  expect_input_error([&] { make_dataset(c, Split::kTrain); }, {"too short"});
  c.train.seq_len = recall_min_seq_len(6);
  auto tight = make_dataset(c, Split::kTrain);
  tight->sample(0, 0, c.train.seq_len, &s);
  EXPECT_EQ(s.inputs.size(), size_t(c.train.seq_len));
}

// ---- accuracy -----------------------------------------------------------------------------

// Catches: accuracy that counts non-answer positions or passes with one wrong digit.
TEST(Accuracy, ExactMatchOnAnswerPositionsOnly) {
  PasskeySpec spec;
  spec.seq_len = 200;
  spec.key = "90210";
  spec.seed = 3;
  Sample s;
  make_passkey(spec, &s);
  std::vector<int32_t> pred = s.targets;
  EXPECT_TRUE(exact_match(s, pred));
  pred[10] = 'Q';  // a filler position: does not count
  EXPECT_TRUE(exact_match(s, pred));
  pred[199] = '9';  // last digit wrong
  EXPECT_FALSE(exact_match(s, pred));
  pred = s.targets;
  pred[195] = '0';  // first digit wrong
  EXPECT_FALSE(exact_match(s, pred));
  Sample text;
  text.targets = {1, 2};
  text.answer = {0, 0};
  EXPECT_FALSE(exact_match(text, std::vector<int32_t>{1, 2}));
}

// Catches: filler of the wrong length or containing digits/colons (which would fake a key).
TEST(Filler, ExactLengthNoDigits) {
  for (int64_t n : {0, 1, 7, 1000}) {
    SampleRng rng(n);
    std::vector<int32_t> out = {'x'};
    append_filler(&rng, n, &out);
    ASSERT_EQ(out.size(), size_t(n + 1));
    for (int32_t t : out) {
      EXPECT_FALSE(t >= '0' && t <= '9');
      EXPECT_NE(t, ':');
      EXPECT_LT(t, 128);
    }
  }
}

}  // namespace
}  // namespace ringtrain
